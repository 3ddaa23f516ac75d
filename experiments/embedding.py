"""CNN codes of a dataset, their t-SNE map (Karpathy's cnnembed, docs/papers.md §10, §19) and
nearest-neighbour retrieval (Krizhevsky et al. 2012, Fig. 4 right: §1), on one streaming pass
(cnn_vis.techniques.embedding).

Reads config.images (a folder, paths, skimage:NAME) or config.dataset / config.split; queries
for retrieval from config.queries (images) or config.query_split (a split of config.dataset).
Writes:
- codes.npy (N x D float32, the flattened layer output, filled row by row during the pass),
  labels.npy (N ints, -1 where unknown), sources.json (N names: file names or "split:index");
- with config.tsne: embedding.npy (N x 2), tsne_scatter.png (coloured by label), tsne_images.png
  (each image at its embedded position), tsne_grid.png (grid_points images snapped to a full
  grid, one per cell), and in summary.json the map's trustworthiness and k-NN label accuracy in
  2-D beside the same accuracy on the codes;
- with queries: neighbours.jsonl, one line per query {"query": name, "neighbours": [[name,
  distance], ...]} nearest first (Euclidean distance of the codes), and neighbours.png (a row per
  query: the query, then its neighbours);
- summary.json and report.html.
"""
import dataclasses
import json
import math
from typing import Any

import numpy as np

from cnn_vis import models, report, runs
from cnn_vis.data import stream as stream_lib
from cnn_vis.errors import check
from cnn_vis.report import draw
from cnn_vis.techniques import embedding

from experiments import _dataset


@dataclasses.dataclass(frozen=True)
class Request:
  apply_fn: models.ModelFn
  variables: Any
  spec: models.ModelSpec
  stream: stream_lib.Stream
  layer: str
  dims: int
  queries: stream_lib.Stream | None
  tsne: embedding.TSNESettings | None
  batch_size: int


def parse(config) -> Request:
  """Everything the run needs, validated; nothing is written."""
  batch_size = _dataset.check_batch_size(config)
  check(isinstance(config.neighbours, int) and config.neighbours >= 1,
        f"neighbours (k) must be an integer >= 1, got {config.neighbours!r}")
  check(isinstance(config.metric_neighbours, int) and config.metric_neighbours >= 1,
        f"metric_neighbours must be an integer >= 1, got {config.metric_neighbours!r}")
  for key in ("thumb", "tile", "canvas"):
    check(isinstance(config[key], int) and config[key] >= 8, f"{key} must be an integer >= 8, "
                                                             f"got {config[key]!r}")
  check(isinstance(config.grid_points, int) and config.grid_points >= 0,
        f"grid_points must be an integer >= 0 (0: every image), got {config.grid_points!r}")
  stream, (apply_fn, variables, spec, table) = _dataset.stream_and_network(config)
  layer = models.check_layer(config.layer or spec.default("embedding"), table)
  dims = math.prod(table.shapes[layer])
  queries = None
  if config.queries or config.query_split:
    queries = _dataset.stream_from(config, spec, images="queries", split="query_split")
  tsne = None
  if config.tsne:
    tsne = embedding.TSNESettings(perplexity=float(config.perplexity), pca_dims=config.pca_dims,
                                  seed=config.seed, n_iter=config.tsne_iterations)
    tsne.check(stream.num_examples)
  check(tsne is not None or queries is not None or config.save_codes,
        "nothing to do: set tsne=True, queries / query_split, or save_codes=True")
  return Request(apply_fn, variables, spec, stream, layer, dims, queries, tsne, batch_size)


class Collector:
  """Receives each batch's outputs (real rows only): codes into an (N, D) array (a .npy file
  mapped into memory when given a path), ids, labels and thumbnails into lists."""

  def __init__(self, count: int, dims: int, path=None):
    self.codes = (np.lib.format.open_memmap(path, "w+", np.float32, (count, dims)) if path
                  else np.zeros((count, dims), np.float32))
    self.count, self.ids, self.labels, self.thumbs = 0, [], [], []

  def __call__(self, outputs: dict, mask: np.ndarray) -> None:
    mask = np.asarray(mask, bool)
    rows = int(mask.sum())
    self.codes[self.count:self.count + rows] = outputs["codes"][mask]
    self.count += rows
    self.ids.append(outputs["id"][mask])
    self.labels.append(outputs["label"][mask])
    if "thumb" in outputs:
      self.thumbs.append(outputs["thumb"][mask])

  def arrays(self):
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype)
    return (self.codes[:self.count], cat(self.ids, np.int32), cat(self.labels, np.int32),
            np.concatenate(self.thumbs) if self.thumbs else None)


def _tsne_outputs(config, request: Request, out, codes, labels, thumbs) -> tuple[dict, list]:
  """embedding.npy, the three pictures and the quality figures."""
  points = embedding.tsne(codes, request.tsne)
  np.save(out / "embedding.npy", points)
  k = config.metric_neighbours
  figures = {"perplexity": request.tsne.perplexity,
             "trustworthiness": (embedding.trustworthiness(codes, points, k)
                                 if len(codes) > 2 * k else float("nan")),
             f"knn{k}_accuracy_2d": embedding.knn_accuracy(points, labels, k),
             f"knn{k}_accuracy_codes": embedding.knn_accuracy(codes, labels, k)}
  names = request.stream.class_names or request.spec.class_names
  draw.scatter_plot(out / "tsne_scatter.png", points, labels, names,
                    title=f"t-SNE of {request.layer} codes ({len(points)} images)")
  report.save_image(out / "tsne_images.png", draw.place_images(points, thumbs, config.canvas))
  rng = np.random.default_rng(config.seed)
  count = len(points) if not config.grid_points else min(config.grid_points, len(points))
  chosen = np.sort(rng.choice(len(points), count, replace=False))
  rows, cols = embedding.grid_shape(count)
  cells = embedding.grid_assignment(points[chosen], rows, cols, config.exact_limit)
  report.save_image(out / "tsne_grid.png", draw.grid_images(cells, thumbs[chosen], rows, cols))
  how = ("optimal assignment (scipy linear_sum_assignment)" if count <= config.exact_limit
         else "sorted into rows, then along each row (more than exact_limit points)")
  items = [(f"{len(points)} images, coloured by label; trustworthiness "
            f"{figures['trustworthiness']:.3f}, {k}-NN label accuracy "
            f"{figures[f'knn{k}_accuracy_2d']:.3f} in 2-D vs "
            f"{figures[f'knn{k}_accuracy_codes']:.3f} on the codes", "tsne_scatter.png", None),
           ("each image at its embedded position (later images on top)", "tsne_images.png",
            None),
           (f"{count} images snapped to a {rows}x{cols} grid, one per cell: {how}",
            "tsne_grid.png", None)]
  return figures, items


def _neighbours_outputs(config, request: Request, out, found, query_names) -> list:
  """neighbours.jsonl and neighbours.png (and its tiles, tiles/neighbours/); the report items."""
  ids, distances = np.asarray(found.ids), found.distances
  valid = ids >= 0
  names = dict(zip(np.unique(ids[valid]).tolist(),
                   request.stream.names(np.unique(ids[valid]))))
  lines = [json.dumps({"query": query, "neighbours": [[names[int(i)], float(d)]
                                                      for i, d, v in zip(row, dist, ok) if v]})
           for query, row, dist, ok in zip(query_names, ids, distances, valid)]
  runs.write_text(out / "neighbours.jsonl", "".join(line + "\n" for line in lines))
  tile = config.tile
  queries = request.queries.fetch(np.arange(request.queries.num_examples))
  pictures = dict(zip(np.unique(ids[valid]).tolist(),
                      request.stream.fetch(np.unique(ids[valid]))))
  blank = np.ones((tile, tile, 3), np.float32)
  tiles, labels = [], []
  for q, (row, dist, ok) in enumerate(zip(ids, distances, valid)):
    tiles.append(draw.resize(queries[q], tile, tile))
    labels.append(query_names[q])
    for i, d, v in zip(row, dist, ok):
      tiles.append(draw.resize(pictures[int(i)], tile, tile) if v else blank)
      labels.append(f"{d:.3g} {names[int(i)]}" if v else "")
  _, grid = report.labelled_grid(out, "neighbours.png", tiles, labels, ids.shape[1] + 1)
  return [(f"each row: a query, then its {ids.shape[1]} nearest images of "
           f"{request.stream.description} by the Euclidean distance of their {request.layer} "
           "codes (the distance and the image under each)", grid, None)]


def run(config, workdir):
  request = parse(config)
  with runs.Run(config, workdir) as run:
    out = run.dir
    query_codes = query_names = None
    if request.queries is not None:
      with run.stage("queries"):
        queries = Collector(request.queries.num_examples, request.dims)
        embedding.codes_pass(request.apply_fn, request.variables,
                             request.queries.batches(request.batch_size), request.layer,
                             collect=queries, total=request.queries.num_examples,
                             desc="query codes")
        query_codes, query_ids, _, _ = queries.arrays()
        query_names = request.queries.names(query_ids)
    collector = Collector(request.stream.num_examples, request.dims,
                          out / "codes.npy" if config.save_codes else None)
    with run.stage("pass"):
      found, result = embedding.codes_pass(
          request.apply_fn, request.variables, request.stream.batches(request.batch_size),
          request.layer, collect=collector, queries=query_codes, k=config.neighbours,
          thumb=config.thumb if request.tsne else 0, total=request.stream.num_examples)
    codes, ids, labels, thumbs = collector.arrays()
    if config.save_codes and len(codes) < request.stream.num_examples:  # unreadable files
      kept = np.array(codes)
      del collector
      np.save(out / "codes.npy", kept)
      codes = kept
    names = request.stream.names(ids)
    if isinstance(request.stream, stream_lib.FileStream):
      labels = np.asarray(_dataset.file_labels(names, request.spec), np.int32)
    np.save(out / "labels.npy", labels)
    runs.write_json(out / "sources.json", names)
    summary = {"model": config.model, "weights": _dataset.weights(config),
               "data": request.stream.description, "layer": request.layer,
               "images": int(len(ids)), "dims": request.dims,
               "pass_seconds": round(result.seconds, 2),
               "images_per_second": round(result.images_per_second, 1)}
    sections = []
    if request.tsne is not None:
      with run.stage("tsne"):
        figures, items = _tsne_outputs(config, request, out, np.asarray(codes), labels, thumbs)
      summary.update(figures)
      sections.append(("t-SNE map (Karpathy's cnnembed; van der Maaten & Hinton 2008)", items))
    if found is not None:
      items = _neighbours_outputs(config, request, out, found, query_names)
      summary.update(queries=len(query_names), neighbours=config.neighbours)
      sections.append(("Nearest neighbours (Krizhevsky et al. 2012, Fig. 4)", items))
    run.summary.update(summary)
    report.write_report(out, f"embedding: {config.model} {request.layer}", config, sections,
                        summary=run.summary)
  return run.summary
