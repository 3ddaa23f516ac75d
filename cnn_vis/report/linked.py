"""A picture whose regions link elsewhere (an HTML image map): e.g. an activation-map grid whose
tiles open that unit's top patches in another run."""
import html
import os
from pathlib import Path
from typing import Sequence

# A link: [left, top, right, bottom] in the picture's pixels, the target (a relative URL), a title.
Link = tuple[Sequence[int], str, str]


def image_map_page(path, title: str, picture: str, links: Sequence[Link], note: str = ""
                   ) -> Path:
  """Writes an HTML page showing `picture` (relative to the page) at its own pixel size, each
  link's rectangle clickable; returns the page's path."""
  path = Path(path)
  areas = "".join(f'<area shape="rect" coords="{",".join(str(int(v)) for v in rect)}" '
                  f'href="{html.escape(href)}" title="{html.escape(name)}" '
                  f'alt="{html.escape(name)}">' for rect, href, name in links)
  page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
          f"</title></head><body style='font-family:sans-serif'><h1>{html.escape(title)}</h1>"
          f"<p>{html.escape(note)}</p><img src='{html.escape(picture)}' usemap='#units' "
          f"style='image-rendering:pixelated'><map name='units'>{areas}</map></body></html>")
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(page)
  os.replace(tmp, path)
  return path
