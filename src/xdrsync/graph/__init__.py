"""Microsoft Graph v1.0 for Defender XDR: sign-in (`auth`), pacing, retries, paging, typed
operations (`security.DefenderApi`).

The package itself imports nothing: commands that only read the workspace use
`graph.permissions` (pure) without loading msal and the HTTP stack.
"""
