import sys

from django.apps import AppConfig

# Decision inputs may be nested about a thousand levels deep (OPA accepts them). Python's JSON
# parser and encoder count each level against the recursion limit from wherever they are called,
# and a view under a dozen middlewares starts deeper than a worker: give every process the same
# ample headroom, so what the upload accepts the worker can store and the pages can show.
RECURSION_LIMIT = 3000


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Decision core"

    def ready(self):
        sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
