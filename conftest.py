"""Collection for the whole suite: the studio's web modules import its optional packages.

Their doctests are collected only where ``pip install 'charrnn[studio]'`` (or ``[test]``) put
Starlette and uvicorn; the studio's tests skip themselves without them.
"""

import importlib.util

_STUDIO = all(importlib.util.find_spec(name) for name in ("starlette", "uvicorn"))
collect_ignore_glob = [] if _STUDIO else ["src/charrnn/studio/app.py", "src/charrnn/studio/server.py"]
