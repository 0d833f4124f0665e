"""Gymnasium environments on MuJoCo: our instruction-following tabletop suite and benchmark adapters."""
