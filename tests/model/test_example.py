import numpy as np
import pytest

from model.example import Example


def test_valid_action_example():
    ex = Example(
        target="action",
        target_value=np.zeros((4, 4), np.float32),
        text="pick the red cube",
        image=np.zeros((32, 32, 3), np.uint8),
        state=np.zeros(7, np.float32),
    )
    assert ex.target == "action"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="smell", target_value="x"), "target must be one of"),
        (
            dict(target="text", target_value="a", image=np.zeros((8, 8), np.float32)),
            r"HxWx3 uint8, got \(8, 8\) float32",
        ),
        (dict(target="action", target_value=np.full((2, 3), np.nan, np.float32)), "finite"),
        (dict(target="text", target_value="a", audio=np.zeros((2, 10), np.float32)), "16000 Hz"),
    ],
)
def test_bad_examples_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Example(**kwargs)


def test_select_state():
    from model.example import select_state

    s = np.arange(8, dtype=np.float64)
    np.testing.assert_array_equal(select_state(s, None), s)
    out = select_state(s, (0, 1, 2, 6, 7))
    assert out.dtype == np.float32 and out.tolist() == [0, 1, 2, 6, 7]
    with pytest.raises(ValueError, match="state_dims"):
        select_state(s, [8])
