"""streamchat-echo: an example plugin. Each hook lives in a module of its own, so using one
imports only what it needs: `provider.py` (-m echo:…), `tools.py` (--tools echo), `source.py` (-f echo:…)."""
