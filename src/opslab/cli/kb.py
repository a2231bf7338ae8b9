"""``opslab kb …``: search, add, list and show runbooks and past incidents.

The knowledge base is the runbooks shipped with opslab plus the user folder
(``OPSLAB_KNOWLEDGE_DIR``, default ``<data_dir>/knowledge``), and the AutoOps seed's
``agents/responder_agent/knowledge_base/incidents.md`` when the working directory has it. The domain
lives in ``opslab.knowledge``; these commands parse arguments and print.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from opslab.cli.context import JsonOption, console, print_json, settings
from opslab.cli.tables import Column, print_table

if TYPE_CHECKING:
    from opslab.knowledge import Document, KnowledgeBase

kb_app = typer.Typer(help="Runbooks and past incidents: search, add, list.", no_args_is_help=True)

# opslab.knowledge.DocumentKind, spelled here so that `opslab --help` does not import the knowledge models.
KindChoice = Literal["runbook", "incident"]
RetrievalChoice = Literal["bm25", "dense", "hybrid"]
KindOption = Annotated[KindChoice | None, typer.Option("--kind", help="Only documents of this kind.")]


def _knowledge(retrieval: RetrievalChoice | None = None) -> KnowledgeBase:
    from opslab.knowledge import KnowledgeBase

    s = settings()
    return KnowledgeBase.load(s.resolved_knowledge_dir, retrieval=retrieval or s.knowledge_retrieval)


def _source(kb: KnowledgeBase, doc: Document) -> str:
    return "builtin" if kb.is_builtin(doc.id) else "user"


def _record(kb: KnowledgeBase, doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "title": doc.title,
        "kind": doc.kind,
        "categories": doc.categories,
        "tags": doc.tags,
        "source": _source(kb, doc),
        "path": str(doc.path) if doc.path else None,
    }


@kb_app.command("search")
def search(
    query: Annotated[list[str], typer.Argument(metavar="QUERY...", help="Symptoms, error text, keywords.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=100, help="How many results.")] = 5,
    kind: KindOption = None,
    retrieval: Annotated[
        RetrievalChoice | None,
        typer.Option(
            help="bm25, dense (needs the `dense` extra) or hybrid; default OPSLAB_KNOWLEDGE_RETRIEVAL."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The documents most relevant to QUERY (BM25 by default), best first."""
    text = " ".join(query)
    kb = _knowledge(retrieval)
    hits = kb.search(text, k=k, kind=kind)
    if as_json:
        print_json(
            {
                "query": text,
                "hits": [
                    {"rank": h.rank, "score": h.score, **_record(kb, h.document), "snippet": h.snippet}
                    for h in hits
                ],
            }
        )
        return
    if not hits:
        console.print(f"no document matches {escape(text)!r}")
        return
    print_table(
        [
            Column("rank", whole=True, justify="right"),
            Column("id", key=True),
            Column("title"),
            Column("score", whole=True, justify="right", drop=2),
            Column("snippet", drop=1),
        ],
        [
            [str(h.rank), h.document.id, escape(h.document.title), f"{h.score:.2f}", escape(h.snippet)]
            for h in hits
        ],
        title=f"knowledge: {escape(text)}",
    )


@kb_app.command("add")
def add(
    file: Annotated[
        Path,
        typer.Argument(
            help="A Markdown file: with YAML front matter (one document), or plain Markdown such as the "
            "AutoOps seed's incidents.md (one incident per '##' section). See docs/knowledge.md."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Validate FILE and add it to your knowledge folder (refuses an id or a file name already in use)."""
    from opslab.knowledge import add_documents

    docs = add_documents(file, settings().resolved_knowledge_dir)
    first, path = docs[0], str(docs[0].path)
    if as_json:
        print_json(
            {
                "ok": True,
                "id": first.id,
                "title": first.title,
                "kind": first.kind,
                "path": path,
                "documents": [{"id": d.id, "title": d.title, "kind": d.kind} for d in docs],
            }
        )
        return
    if len(docs) == 1:
        console.print(f"added {first.kind} [bold]{escape(first.id)}[/bold] ({escape(first.title)}) -> {path}")
        return
    console.print(f"added {len(docs)} {first.kind}s from {escape(file.name)} -> {path}")
    for d in docs:
        console.print(f"  [bold]{escape(d.id)}[/bold] ({escape(d.title)})")


@kb_app.command("list")
def list_documents(kind: KindOption = None, as_json: JsonOption = False) -> None:
    """Every document: the built-in runbooks, then yours."""
    kb = _knowledge()
    docs = kb.list(kind=kind)
    if as_json:
        print_json({"documents": [_record(kb, d) for d in docs]})
        return
    print_table(
        [
            Column("id", key=True),
            Column("kind", whole=True),
            Column("title"),
            Column("categories", drop=2),
            Column("source", drop=1),
        ],
        [
            [d.id, d.kind, escape(d.title), escape(", ".join(d.categories)), escape(_source(kb, d))]
            for d in docs
        ],
        title=f"knowledge ({len(docs)} documents)",
    )


@kb_app.command("show")
def show(doc_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False) -> None:
    """One document: its front matter and its Markdown text."""
    kb = _knowledge()
    doc = kb.get(doc_id)
    if as_json:
        print_json({**doc.model_dump(mode="json"), "source": _source(kb, doc)})
        return
    from rich.markdown import Markdown

    console.print(f"[bold]{escape(doc.title)}[/bold]  ({doc.kind} {doc.id}, {_source(kb, doc)})")
    if doc.categories:
        console.print(f"categories: {', '.join(doc.categories)}")
    for label, lines in (("symptoms", doc.symptoms), ("signals", doc.signals)):
        if lines:
            console.print(f"{label}:")
            for line in lines:
                console.print(f"  - {escape(line)}")
    if doc.verification_steps:
        console.print("verify:")
        for step in doc.verification_steps:
            console.print(f"  - {escape(step)}")
    if doc.actions:
        console.print("actions:")
        for a in doc.actions:
            line = f"[{a.priority}] {a.title} ({a.type}): {a.description}"
            console.print(f"  - {escape(line)}")
    console.print(Markdown(doc.body))
