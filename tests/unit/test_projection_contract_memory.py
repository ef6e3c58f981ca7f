import pytest

from projections.memory_view import InMemoryView
from tests.projection_contract import ProjectionContract


class TestInMemoryView(ProjectionContract):
    @pytest.fixture
    def view(self):
        return InMemoryView()

    @pytest.fixture
    def other_view(self):
        return InMemoryView()

    async def rows(self, view, table):
        return view.rows(table)
