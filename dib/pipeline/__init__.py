"""One build from start to end, using every layer below."""
from dib.pipeline.build import run_build
from dib.pipeline.prepare import Prepared, prepare

__all__ = ["Prepared", "prepare", "run_build"]
