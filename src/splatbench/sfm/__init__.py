"""Structure-from-motion with pycolmap: config, COLMAP wrapper, pose alignment, the SfM stage.

``config`` and ``alignment`` import without pycolmap; ``colmap`` and ``pipeline`` need it.
"""

from splatbench.sfm.config import ResolutionConfig, SfmConfig

__all__ = ["ResolutionConfig", "SfmConfig", "run_sfm"]


def __getattr__(name: str):  # lazy, so `import splatbench.sfm` does not load pycolmap
    if name == "run_sfm":
        from splatbench.sfm.pipeline import run_sfm

        return run_sfm
    raise AttributeError(name)
