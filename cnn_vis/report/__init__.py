"""Presenting results: PNG images and grids, heatmaps, metrics.jsonl and HTML reports."""
from cnn_vis.report.html import append_metrics, read_metrics, write_index, write_report
from cnn_vis.report.images import (heatmap, image_grid, normalize_for_display, overlay, save_image,
                                   to_uint8)

__all__ = ["append_metrics", "heatmap", "image_grid", "normalize_for_display", "overlay",
           "read_metrics", "save_image", "to_uint8", "write_index", "write_report"]
