"""Settings for the benchmarks: Goalpost's own, plus a URLconf with a bare redirect view to compare against."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.django_bench.urls"
CLICK_REDIS_PREFIX = "goalpost-bench:"  # never touches a real buffer on the same Redis
