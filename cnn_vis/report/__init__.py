"""Presenting results: PNG images and grids, heatmaps, metrics.jsonl and HTML reports."""
from cnn_vis.report.html import labelled_grid, write_index, write_report
from cnn_vis.report.plots import line_plots
from cnn_vis.report.images import (attribution_picture, heatmap, image_grid, normalize_for_display,
                                   overlay, save_image, to_uint8)

__all__ = ["attribution_picture", "heatmap", "image_grid", "labelled_grid", "line_plots",
           "normalize_for_display", "overlay", "save_image", "to_uint8", "write_index",
           "write_report"]
