"""`{{ merge tags }}` in rule fields: parsed and compiled once, evaluated per event.

A field is one of three shapes, decided at load time:

- plain text without `{{` -> a constant;
- exactly one `{{ expr }}` -> the expression's native value (a number stays a
  number, a list stays a list), as `Environment.compile_expression` does;
- text mixed with tags ("order:{{ id }}") -> a string, omitted when every tag
  in it gave nothing.

Expressions run in Jinja's ImmutableSandboxedEnvironment with no globals, no
template loader, and only the documented filters and tests (bridge.mapping.allowed);
the operators that can build a large value are bounded (bridge.mapping.limits),
and `{% for %}` spends the event's loop steps (bridge.mapping.budget). Most rule fields are a path with a few filters
(`{{ item.price | decimal }}`); those are compiled to plain Python closures
that read the payload directly, which is what keeps the engine within reach
of a hand-written mapping function. Everything else is a Jinja template
evaluated against one shared context per event (never a copy of the payload
per field).

A compiled field depends on its text alone, so the compiled forms of the last
COMPILED_KEPT texts are kept and shared: loading a rule set again (a reload, a
draft's check, a publish, a preview) compiles only the fields that changed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import TemplateAssertionError
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.runtime import Context, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from bridge.mapping import budget, limits
from bridge.mapping.allowed import FILTER_FIXES, TESTS, filter_refusal, test_refusal
from bridge.mapping.filters import FILTERS

Evaluator = Callable[[Context], Any]

# The only statements a mixed-text field may use; include/import/extends/macro
# would reach outside the field (files, other templates) and are refused.
ALLOWED_STATEMENTS = (nodes.Output, nodes.If, nodes.For, nodes.Assign)
# Filters the compiled templates call and no rule can write (their names have a space): the list
# each `{% for %}` walks goes through LOOP_FILTER, each list or object a rule builds (`[a, b]`)
# through MEASURED, and `a ~ b` is JOINED.
LOOP_FILTER = "loop steps"
MEASURED = "measured value"
JOINED = "joined text"
MAX_TREE_DEPTH = 2 * limits.MAX_NESTING


class ExpressionError(ValueError):
    """A field's template is wrong. `line` is 1-based within the field's text."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


class RuleEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox rules run in.

    Dict payload fields are read as items before attributes, so a payload
    key called `items` or `keys` is the data, not the dict method; methods of
    other values are not reachable at all. Jinja's own filters and tests are
    not there, and `*`, `**` and `%` go through `call_binop`, which bounds
    what they build.
    """

    intercepted_binops = frozenset(limits.BOUNDED_BINOPS)

    def __init__(self) -> None:
        super().__init__(undefined=ChainableUndefined, autoescape=False, loader=None)
        self.globals.clear()  # no range, cycler, joiner, namespace, lipsum: nothing to climb from
        self.filters = {**FILTERS, LOOP_FILTER: budget.bounded, MEASURED: limits.measured, JOINED: limits.joined}
        self.tests = dict(TESTS)
        self.finalize = _finalize

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return limits.binop(operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict):
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        value = super().getattr(obj, attribute)
        # Rules read data; methods (`email.format`, `list.append`) are not data and
        # would otherwise leak into records as function objects.
        if callable(value) and not isinstance(value, Undefined):
            return self.undefined(obj=obj, name=attribute)
        return value


def _finalize(value: Any) -> Any:
    return "" if value is None or isinstance(value, Undefined) else value


ENV = RuleEnvironment()


def new_scope(root: dict[str, Any]) -> Context:
    """One evaluation context per event: the payload dict is shared, not copied."""
    return new_context(ENV, "rule", {}, root, shared=True)


def _missing_to_none(value: Any) -> Any:
    return None if isinstance(value, Undefined) else value


@dataclass(frozen=True)
class Compiled:
    """A compiled field or condition, shared by every rule set with a field of its text. `names` are the root
    variables it reads, `paths` the dotted paths."""

    evaluate: Evaluator
    source: str
    kind: str  # const | expr | text | template
    names: frozenset[str] = field(default_factory=frozenset)
    constant: Any = None
    paths: frozenset[str] = field(default_factory=frozenset)


def parse_template(source: str) -> nodes.Template:
    _refuse_oversized(source)
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"template syntax error: {exc.message}", exc.lineno or 1) from None
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None
    _refuse_unsafe(tree)
    return tree


_TOO_DEEP = (f"this expression is nested too deeply (over {limits.MAX_NESTING} brackets, or a very long chain); "
             "split it into simpler fields")


def _refuse_oversized(source: str) -> None:
    """Before Jinja's recursive parser sees it: a field's text is short and shallow."""
    if len(source) > limits.MAX_FIELD_TEXT:
        raise ExpressionError(f"this field's template has {len(source):,} characters; a field may have at most "
                              f"{limits.MAX_FIELD_TEXT:,}: split it, or move fixed text out of `{{{{ }}}}`")
    deep = limits.too_deep(source)
    if deep is not None:
        raise ExpressionError(f"brackets are nested over {limits.MAX_NESTING} deep here; write it more simply",
                              1 + source.count("\n", 0, deep))


def _nodes(tree: nodes.Node) -> list[nodes.Node]:
    """Every node of the tree, walked without recursion; ExpressionError when it is too deep."""
    found: list[nodes.Node] = []
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise ExpressionError(_TOO_DEEP, getattr(node, "lineno", 1) or 1)
        found.append(node)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return found


def _refuse_unsafe(tree: nodes.Node) -> None:
    for node in _nodes(tree):
        lineno = getattr(node, "lineno", 1) or 1
        if isinstance(node, nodes.Stmt) and not isinstance(node, ALLOWED_STATEMENTS):
            tag = type(node).__name__.lower()
            raise ExpressionError(f"`{{% {tag} %}}` is not allowed in rules; use only `{{{{ ... }}}}` and `{{% if %}}`", lineno)
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise ExpressionError(f"`.{node.attr}` is not allowed: names starting with `_` are internal", lineno)
        if isinstance(node, nodes.Name) and node.name.startswith("_"):
            raise ExpressionError(f"`{node.name}` is not allowed: names starting with `_` are internal", lineno)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            raise ExpressionError(f"`[{node.arg.value!r}]` is not allowed: names starting with `_` are internal", lineno)
        if isinstance(node, nodes.Call):
            raise ExpressionError(_no_calls(node.node), lineno)
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise ExpressionError(filter_refusal(node.name), lineno)
        if isinstance(node, nodes.Test) and node.name not in TESTS:
            raise ExpressionError(test_refusal(node.name), lineno)
        if isinstance(node, nodes.BinExpr) and node.operator in limits.BOUNDED_BINOPS:
            try:
                _folded(node)
            except limits.LimitError as exc:
                raise ExpressionError(str(exc), lineno) from None


def _folded(node: nodes.Node) -> Any:
    """The node's value when the check can compute it, with the bounded operators' limits; else _NOT_CONST."""
    if isinstance(node, nodes.BinExpr) and node.operator in limits.BOUNDED_BINOPS:
        left, right = _folded(node.left), _folded(node.right)
        if left is _NOT_CONST or right is _NOT_CONST:
            return _NOT_CONST
        try:
            return limits.binop(node.operator, left, right)
        except limits.LimitError:
            raise
        except Exception:  # 1 % 0: an error for each event, as Jinja leaves it
            return _NOT_CONST
    if not isinstance(node, nodes.Expr):
        return _NOT_CONST
    try:
        return node.as_const(EvalContext(ENV))
    except Exception:
        return _NOT_CONST


def _no_calls(called: nodes.Node) -> str:
    """The message for `round(x)` or `email.lower()`: rules have filters, never functions or methods."""
    if isinstance(called, nodes.Getattr):
        name, shown = called.attr, f"`.{called.attr}()`"
    else:
        name = called.name if isinstance(called, nodes.Name) else "..."
        shown = f"`{name}(...)`"
    if name in FILTERS:
        hint = f"use `| {name}`"
    else:
        hint = FILTER_FIXES.get(name, "use a filter after `|`, like `{{ total_price | decimal }}`")
    return f"{shown} cannot be called in rules; {hint} (the filters are listed in mappings/README.md)"


def root_names(tree: nodes.Node) -> frozenset[str]:
    """Root variables an expression reads (loop variables of `{% for %}` included)."""
    return frozenset(node.name for node in tree.find_all(nodes.Name) if node.ctx == "load")


def read_paths(tree: nodes.Node) -> frozenset[str]:
    """The dotted paths an expression reads: `attributes.comms.email_promo`, `meta_data`."""
    found: set[str] = set()

    def chain(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Name):
            return node.name if node.ctx == "load" else None
        if isinstance(node, nodes.Getattr):
            base = chain(node.node)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, (str, int)):
            base = chain(node.node)
            return f"{base}.{node.arg.value}" if base else None
        return None

    def visit(node: nodes.Node) -> None:
        path = chain(node)
        if path is not None:
            found.add(path)
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(tree)
    return frozenset(found)


# The shipped rules have ~280 distinct templates and conditions, ~2.5 KB each compiled: a few rule sets' worth.
COMPILED_KEPT = 1024


def compile_field(source: Any) -> Compiled:
    """Compile one YAML scalar from a rule. Non-strings are constants."""
    if not isinstance(source, str) or ("{{" not in source and "{%" not in source):
        return Compiled(_constant(source), str(source), "const", constant=source)
    return _compile_template(source)


@functools.lru_cache(maxsize=COMPILED_KEPT)
def _compile_template(source: str) -> Compiled:
    tree = parse_template(source)
    body = tree.body
    names = root_names(tree)
    if len(body) == 1 and isinstance(body[0], nodes.Output):
        parts = body[0].nodes
        exprs = [part for part in parts if not isinstance(part, nodes.TemplateData)]
        texts = [part.data for part in parts if isinstance(part, nodes.TemplateData)]
        if len(exprs) == 1 and all(not text.strip() for text in texts):
            return Compiled(compile_node(exprs[0]), source, "expr", names, paths=read_paths(tree))
        if exprs:
            return Compiled(_concat(parts), source, "text", names, paths=read_paths(tree))
    return Compiled(_render_template(tree), source, "template", names, paths=read_paths(tree))


def _constant(value: Any) -> Evaluator:
    return lambda ctx: value


def compile_condition(source: Any) -> Compiled:
    """A `when:` condition: `{{ email }}` or the bare expression `email`."""
    if isinstance(source, bool):
        return Compiled(_constant(source), str(source), "const", constant=source)
    return _compile_condition(str(source))


@functools.lru_cache(maxsize=COMPILED_KEPT)
def _compile_condition(source: str) -> Compiled:
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        text = text[2:-2]
    _refuse_oversized(text)
    try:
        parser = Parser(ENV, text, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise ExpressionError(f"unexpected `{token.value}` in condition", token.lineno)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"condition syntax error: {exc.message}", exc.lineno or 1) from None
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None
    expr.set_environment(ENV)
    _refuse_unsafe(expr)
    return Compiled(compile_node(expr), source, "expr", root_names(expr), paths=read_paths(expr))


def compile_node(expr: nodes.Expr) -> Evaluator:
    fast = _fast_path(expr)
    if fast is not None:
        return fast
    template = _expression_template(expr)
    render = template.root_render_func

    def evaluate(ctx: Context) -> Any:
        for _ in render(ctx):
            pass
        return _missing_to_none(ctx.vars.get("result"))

    return evaluate


class _Bounded(NodeTransformer):
    """Routes what could build a large value through the limits: the loops, the lists and objects a
    rule writes with anything but constants in them, and `~`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _internal(node.iter, LOOP_FILTER)
        return node

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._measured(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._measured(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._measured(node) if node.ctx == "load" else node  # not the names of `for a, b in ...`

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _internal(nodes.List(node.nodes, lineno=node.lineno), JOINED)

    def _measured(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return node if _folded(node) is not _NOT_CONST else _internal(node, MEASURED)


def _internal(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _bounded(node: nodes.Node) -> Any:
    return _Bounded().visit(node)


def _expression_template(expr: nodes.Expr) -> Any:
    # The same construction as Environment.compile_expression, but we keep the
    # template so it can run against a shared context instead of a fresh copy.
    body = [nodes.Assign(nodes.Name("result", "store"), _bounded(expr), lineno=1)]
    try:
        return ENV.from_string(nodes.Template(body, lineno=1))
    except TemplateAssertionError as exc:
        raise ExpressionError(exc.message or str(exc), exc.lineno or 1) from None


def _concat(parts: Sequence[nodes.Node]) -> Evaluator:
    pieces: list[str | Evaluator] = []
    for part in parts:
        if isinstance(part, nodes.TemplateData):
            pieces.append(part.data)
        else:
            pieces.append(compile_node(part))  # type: ignore[arg-type]

    def evaluate(ctx: Context) -> str | None:
        out: list[str] = []
        filled = False
        size = 0
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            value = piece(ctx)
            if value is None or value == "":
                continue
            filled = True
            out.append(_text(value))
            size += len(out[-1])
            if size > limits.MAX_RECORD_CHARS:
                raise limits.LimitError(f"the text would be over {limits.MAX_RECORD_CHARS:,} characters")
        # "order:" with an empty id is worse than nothing: omit the field.
        return "".join(out) if filled else None

    return evaluate


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _render_template(tree: nodes.Template) -> Evaluator:
    try:
        template = ENV.from_string(_bounded(tree))
    except TemplateAssertionError as exc:
        raise ExpressionError(exc.message or str(exc), exc.lineno or 1) from None
    render = template.root_render_func

    def evaluate(ctx: Context) -> str | None:
        out: list[str] = []
        size = 0
        for piece in render(ctx):
            size += len(piece)
            if size > limits.MAX_RECORD_CHARS:
                raise limits.LimitError(f"the text would be over {limits.MAX_RECORD_CHARS:,} characters")
            out.append(piece)
        text = "".join(out).strip()
        return text or None

    return evaluate


# --- fast path -----------------------------------------------------------------

def _fast_path(expr: nodes.Expr) -> Evaluator | None:
    """A closure for `path.to.value | filter(const, ...)`, or None if not that shape."""
    filters: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
    node: nodes.Node = expr
    while isinstance(node, nodes.Filter):
        if node.name not in FILTERS or node.dyn_args is not None or node.dyn_kwargs is not None:
            return None
        if (not all(isinstance(arg, nodes.Const) for arg in node.args)
                and not all(_const_value(arg) is not _NOT_CONST for arg in node.args)):
            return None
        if not all(_const_value(kw.value) is not _NOT_CONST for kw in node.kwargs):
            return None
        args = tuple(_const_value(arg) for arg in node.args)
        kwargs = {str(kw.key): _const_value(kw.value) for kw in node.kwargs}
        filters.append((FILTERS[node.name], args, kwargs))
        node = node.node  # type: ignore[assignment]
    if isinstance(node, nodes.Const):
        constant = node.value
        read: Evaluator = lambda ctx: constant  # noqa: E731
    else:
        path = _path(node)
        if path is None:
            return None
        read = _reader(*path)
    if not filters:
        return read
    filters.reverse()

    def evaluate(ctx: Context) -> Any:
        value = read(ctx)
        for function, args, kwargs in filters:
            value = function(value, *args, **kwargs)
        return value

    return evaluate


_NOT_CONST = object()


def _const_value(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Dict) and all(
        _const_value(pair.key) is not _NOT_CONST and _const_value(pair.value) is not _NOT_CONST
        for pair in node.items
    ):
        return {_const_value(pair.key): _const_value(pair.value) for pair in node.items}
    if isinstance(node, (nodes.List, nodes.Tuple)) and all(_const_value(i) is not _NOT_CONST for i in node.items):
        return [_const_value(item) for item in node.items]
    return _NOT_CONST


def _path(node: nodes.Node) -> tuple[str, tuple[Any, ...]] | None:
    steps: list[Any] = []
    while True:
        if isinstance(node, nodes.Name):
            steps.reverse()
            return node.name, tuple(steps)
        if isinstance(node, nodes.Getattr):
            steps.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, (str, int)):
            steps.append(node.arg.value)
            node = node.node
        else:
            return None


def _reader(name: str, steps: tuple[Any, ...]) -> Evaluator:
    """Read a path the way RuleEnvironment would, without building Undefined objects."""

    def read(ctx: Context) -> Any:
        value = ctx.vars.get(name, _NOT_CONST)
        if value is _NOT_CONST:
            value = ctx.parent.get(name)
        for step in steps:
            if value is None:
                return None
            if isinstance(value, dict):
                value = value.get(step)
            elif isinstance(value, list):
                if isinstance(step, int) and -len(value) <= step < len(value):
                    value = value[step]
                else:
                    return None
            else:
                value = _missing_to_none(ENV.getattr(value, step) if isinstance(step, str) else ENV.getitem(value, step))
        return value

    return read
