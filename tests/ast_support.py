"""What the source scans in the tests share: walking only the code that can run."""

from __future__ import annotations

import ast


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``: a block that never runs."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class RuntimeVisitor(ast.NodeVisitor):
    """A visitor that skips ``if TYPE_CHECKING:`` bodies (their ``else`` still runs)."""

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)
