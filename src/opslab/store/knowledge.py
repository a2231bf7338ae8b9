"""Knowledge documents shared by every replica: a document the responder learned on one replica is
published here, and any replica (the next lease holder, another API host) writes the ones its knowledge
folder lacks into it before it reads the folder. The folder stays what retrieval reads; the table is
what makes it the same everywhere."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from opslab.errors import Conflict, InvalidInput
from opslab.knowledge import Document, KnowledgeBase, add_document
from opslab.store.engine import write_tx
from opslab.store.tables import knowledge_documents

log = logging.getLogger("opslab.store")


class SqlSharedKnowledge:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def publish(self, document: Document, text: str) -> None:
        """Share ``document`` (its Markdown ``text``); one already shared under its id is kept."""
        try:
            with write_tx(self.engine) as conn:
                conn.execute(
                    insert(knowledge_documents).values(
                        id=document.id, kind=document.kind, text=text, added_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            pass  # shared already (documents are written once: an id is never reused)

    def pull(self, folder: Path) -> list[str]:
        """Write every shared document ``folder`` lacks into it; the ids written."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(knowledge_documents.c.id, knowledge_documents.c.text).order_by(
                    knowledge_documents.c.added_at
                )
            ).all()
        have = KnowledgeBase.load(folder if folder.is_dir() else None)
        written = []
        for row in rows:
            if row.id in have:
                continue
            try:
                add_document(row.text, folder)
            except (Conflict, InvalidInput) as exc:  # another document took the id here; or unreadable
                log.warning("shared knowledge document %s not written into %s: %s", row.id, folder, exc)
                continue
            written.append(row.id)
        return written
