"""Access keys for `streamchat serve --keys`: who may ask, for how much, how fast, and what it cost.

`records` (a key's limits, made and hashed), `limits` (the window and budget arithmetic, pure),
`state` (the store's interface), `sqlite_state` / `redis_state` (its two implementations),
`stores` (`open_state`: the one `--state` names), `meter` (a request's admission and settlement, priced as the CLI prices a turn).
"""
