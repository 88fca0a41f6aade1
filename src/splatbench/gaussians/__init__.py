"""Gaussian parameters: the container, initialisation (SfM / random), PLY I/O, scene views."""

from splatbench.gaussians.init import (
    InitConfig,
    init_from_points,
    init_random,
    init_splats,
    knn_log_scales,
    read_sfm_points,
)
from splatbench.gaussians.params import (
    PARAM_KEYS,
    SH_C0,
    check_splats,
    create_splats,
    num_sh_bases,
    rgb_to_sh,
    sh_colors,
    sh_degree_from_bases,
    sh_to_rgb,
    splats_sh_degree,
)
from splatbench.gaussians.ply import PlyFormatError, read_ply, splats_to_ply_bytes, write_ply
from splatbench.gaussians.views import SceneViews, load_views, scene_scale

__all__ = [
    "PARAM_KEYS",
    "SH_C0",
    "InitConfig",
    "PlyFormatError",
    "SceneViews",
    "check_splats",
    "create_splats",
    "init_from_points",
    "init_random",
    "init_splats",
    "knn_log_scales",
    "load_views",
    "num_sh_bases",
    "read_ply",
    "read_sfm_points",
    "rgb_to_sh",
    "scene_scale",
    "sh_colors",
    "sh_degree_from_bases",
    "sh_to_rgb",
    "splats_sh_degree",
    "splats_to_ply_bytes",
    "write_ply",
]
