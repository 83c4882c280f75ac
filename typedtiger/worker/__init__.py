"""The execution path: the Worker loop, the Job value, the executor protocol and executors.

``loop`` (the Worker) knows the Executor and Backend protocols only; an executor (``sync``,
``fork`` with ``process`` and ``child``) runs Jobs (``job``) through the worker's resolver
(``resolve``) and never touches a backend; outcomes go back to the loop, which records them
(``recording``).
"""

from typedtiger.worker.loop import Worker, lock_id_for

__all__ = ["Worker", "lock_id_for"]
