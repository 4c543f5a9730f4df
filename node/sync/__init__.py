"""The sync engine shared by the commune node and the district hub.

No Flask and no request globals here: clocks, keys and databases are passed in.
"""
