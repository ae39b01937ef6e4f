"""Reports are read-only over other apps' data; this app owns no tables yet."""
