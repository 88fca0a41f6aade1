"""3DGS training: configs, the loop, strategies, early stop, checkpoints, diagnostics."""

from splatbench.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from splatbench.train.config import (
    DefaultStrategyConfig,
    EarlyStopConfig,
    EarlyStopOff,
    InitConfig,
    LrConfig,
    MCMCStrategyConfig,
    PlateauConfig,
    ProgressiveConfig,
    StrategyConfig,
    TargetConfig,
    TrainConfig,
    configs_from_params,
    early_stop_config_from_dict,
    strategy_config_from_dict,
)
from splatbench.train.errors import NonFiniteError, TrainingError, TrainingOOMError
from splatbench.train.loop import RasterizeFn, TrainResult, train
from splatbench.train.scene import DIAGNOSTICS_FILENAME, PLY_FILENAME, train_scene
from splatbench.train.strategies import (
    FixedDefaultStrategy,
    RefineEvent,
    TorchMCMCStrategy,
    build_strategy,
    relocation_opacity_scale,
)

__all__ = [
    "DIAGNOSTICS_FILENAME",
    "PLY_FILENAME",
    "CheckpointError",
    "DefaultStrategyConfig",
    "EarlyStopConfig",
    "EarlyStopOff",
    "FixedDefaultStrategy",
    "InitConfig",
    "LrConfig",
    "MCMCStrategyConfig",
    "NonFiniteError",
    "PlateauConfig",
    "ProgressiveConfig",
    "RasterizeFn",
    "RefineEvent",
    "StrategyConfig",
    "TargetConfig",
    "TorchMCMCStrategy",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingOOMError",
    "build_strategy",
    "configs_from_params",
    "early_stop_config_from_dict",
    "latest_checkpoint",
    "load_checkpoint",
    "relocation_opacity_scale",
    "strategy_config_from_dict",
    "train",
    "train_scene",
]
