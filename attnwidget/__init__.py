"""attnwidget: stream a transformer's attention into a layer x head grid in Jupyter."""

from .capture import AttentionNotReturnedError, capture_attention
from .dataset_panel import DatasetStatisticsPanel
from .dataset_statistics import head_statistics_over
from .default_model import default_model
from .export import to_html
from .geometry import InputGeometry, input_geometry
from .held_grid import AttentionStream, show, stream
from .images import load_image
from .models import UnsupportedModelError, VisionModel
from .notebook import explore, explore_many
from .source import Picture, Source, SourceInput, TokenLayout
from .vlm import VisionLanguageModel
from .widget import AttentionGrid
from .windowed_model import WindowedVisionModel, stage_grids

__all__ = [
    "AttentionGrid",
    "AttentionNotReturnedError",
    "AttentionStream",
    "DatasetStatisticsPanel",
    "InputGeometry",
    "Picture",
    "Source",
    "SourceInput",
    "TokenLayout",
    "UnsupportedModelError",
    "VisionLanguageModel",
    "VisionModel",
    "WindowedVisionModel",
    "capture_attention",
    "default_model",
    "explore",
    "explore_many",
    "head_statistics_over",
    "input_geometry",
    "load_image",
    "show",
    "stage_grids",
    "stream",
    "to_html",
]
__version__ = "0.1.0"
