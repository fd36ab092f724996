"""Destinations: where the hub's change sequence goes (the workspace's own log tables, Microsoft
Sentinel, ...), each at its own pace from its own acknowledged position (docs/fanout.md).
"""
