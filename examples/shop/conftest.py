"""Point the typedtiger pytest plugin at the shop's Tiger.

Overriding the ``typedtiger_app`` fixture binds this Tiger for the tests of this folder. A
project can do the same for all its tests with the ini option instead::

    [tool.pytest.ini_options]
    typedtiger_app = "shop.tasks:tiger"
"""

from __future__ import annotations

import pytest

from examples.shop import tasks
from typedtiger import Tiger


@pytest.fixture
def typedtiger_app() -> Tiger:
    return tasks.tiger
