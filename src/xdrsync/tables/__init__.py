"""Sentinel-compatible log tables (SecurityIncident, SecurityAlert, AlertEvidence, ...) and KQL.

Modules, from data to query:

* `schemas`    - column lists (package data `schemas/*.json`) and KQL -> DuckDB types
* `sentinel`   - pure mapping of incidents/alerts to rows, as Microsoft's connector writes them
                 (`security_incident_row`, `security_alert_row`, `alert_evidence_rows`, ...)
* `logstore`   - `LogStore`: one DuckDB file, `append`/`append_batch`, `query(kql)`, `sql`
* `querying`   - one KQL query: made compatible, admitted, translated, checked, run
* `compat`     - rewrites Sentinel KQL duckdb-kql does not translate as written (token-based)
* `rewritten`  - `Rewritten`: the query as `compat` rewrote it, and the way back to the user's
* `translations` - translations of queries already run, kept so a repeated query needs no parser
* `kqltokens`  - the KQL lexer (duckdb-kql's own grammar) and helpers to walk its tokens
* `guard`      - the allow-list: a query reads the workspace tables and nothing else
* `generators` - bounds on `range`/`strrep`, which DuckDB can neither interrupt nor account for
* `sandbox`    - the query connection: read-only, no file system, settings locked
* `limits`     - `QueryLimits` (time, memory, threads, rows) and the interrupting watchdog
* `output`     - `format_result(result, "table" | "json" | "csv")`
* `errors`     - `QueryError` (one clear line for the CLI) with `QueryRefusedError` and
                 `QueryLimitError`, `StoreBusyError`

Nothing is imported here, so importing the package does not load DuckDB.
"""

from __future__ import annotations
