"""Wire the search page's components to the plain functions in ``actions``,
``results`` and ``charts``. Each callback only unpacks values, calls them and
packs the outputs.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import actions, ids
from dashboard.api_client import ApiClient
from dashboard.charts import bar_figure, hovered_patent, violin_figure
from dashboard.layout import detail_panel, error_element, notice_elements
from dashboard.results import (
    category_of,
    export_csv,
    find_result,
    result_notices,
    result_rows,
)
from dashboard.search_form import SearchForm

logger = logging.getLogger(__name__)

FORM_FIELDS = (ids.TITLE, ids.DESCRIPTION, ids.SIX_T, ids.IPC_PREFIX, ids.YEAR_FROM,
               ids.YEAR_TO, ids.REGISTER_STATUS, ids.K, ids.MODE)
FORM_PROPERTIES = ("value",) * len(FORM_FIELDS)
# Inputs where Enter runs the search (the description is a textarea, where Enter
# starts a new line).
SUBMIT_FIELDS = (ids.TITLE, ids.IPC_PREFIX, ids.YEAR_FROM, ids.YEAR_TO, ids.K)


def _form_values(form: SearchForm) -> list[Any]:
    return [form.title, form.description, form.six_t, form.ipc_prefix, form.year_from,
            form.year_to, form.register_status, form.k, form.mode]


def _status_line(outcome: actions.SearchOutcome) -> Any:
    error = outcome.get("error")
    if error:
        return error_element(error["message"])
    reply = outcome["reply"]
    took = reply.get("took_ms")
    took_text = f", {took:.0f} ms" if isinstance(took, (int, float)) else ""
    mode = reply.get("mode") or "기본"
    return html.Div(f"'{outcome['request']['title']}' 검색 완료: {len(reply['results'])}건"
                    f" ({mode}{took_text})", id="search-done", style={"fontSize": "13px"})


def register_callbacks(app: Dash, client: ApiClient) -> None:
    """Attach every callback of the search page to ``app``."""
    stats_cache = actions.ScoreStatsCache(client)

    @app.callback(
        Output(ids.SEARCH_STORE, "data"),
        Output(ids.SEARCH_STATUS, "children"),
        Output(ids.URL, "search"),
        Output(ids.FORM_ERROR, "children"),
        *[Output(field, prop) for field, prop in zip(FORM_FIELDS, FORM_PROPERTIES)],
        Input(ids.SEARCH_BUTTON, "n_clicks"),
        *[Input(field, "n_submit") for field in SUBMIT_FIELDS],
        Input(ids.URL, "search"),
        *[State(field, prop) for field, prop in zip(FORM_FIELDS, FORM_PROPERTIES)],
        State(ids.SEARCH_STORE, "data"),
        running=[(Output(ids.SEARCH_BUTTON, "disabled"), True, False)],
    )
    def search(_clicks, *values):
        url_search, *raw_form, previous = values[len(SUBMIT_FIELDS):]
        from_url = ctx.triggered_id in (None, ids.URL)
        step = actions.search_step(client, from_url, url_search, raw_form, previous)
        if step is None:
            return (no_update,) * (4 + len(FORM_FIELDS))
        form_values = _form_values(step.form) if step.form else [no_update] * len(FORM_FIELDS)
        form_error = (error_element(step.form_error, "form-error-message")
                      if step.form_error else "")
        if step.outcome is None:
            return no_update, "", no_update, form_error, *form_values
        return (step.outcome, _status_line(step.outcome), step.url_query or no_update,
                form_error, *form_values)

    @app.callback(
        Output(ids.RESULTS_TABLE, "data"),
        Output(ids.RESULTS_TABLE, "selected_rows"),
        Output(ids.RESULTS_TABLE, "selected_row_ids"),
        Output(ids.RESULTS_TABLE, "page_current"),
        Output(ids.RESULTS_TABLE, "active_cell"),
        Output(ids.NOTICES, "children"),
        Output(ids.RESULT_COUNT, "children"),
        Output(ids.EXPORT_BUTTON, "disabled"),
        Output(ids.SHARE_LINK, "href"),
        Output(ids.SHARE_LINK, "style"),
        Input(ids.SEARCH_STORE, "data"),
        prevent_initial_call=True,
    )
    def show_results(outcome):
        outcome = outcome or {}
        reply = outcome.get("reply")
        if not reply:
            # The API failed; the message is in the status line above.
            return [], [], [], 0, None, [], "검색하지 못했습니다.", True, "", {"display": "none"}
        rows = result_rows(reply["results"])
        count = html.Span([html.B(f"검색 결과 {len(rows)}건"),
                           f" · '{outcome['request']['title']}'"])
        share_style = {"marginRight": "12px"}
        return (rows, [], [], 0, None, notice_elements(result_notices(reply)), count,
                not rows, outcome["query"], share_style)

    @app.callback(
        Output(ids.DETAIL_PANEL, "children"),
        Input(ids.RESULTS_TABLE, "active_cell"),
        State(ids.SEARCH_STORE, "data"),
        prevent_initial_call=True,
    )
    def show_detail(active_cell, outcome):
        if not active_cell or not active_cell.get("row_id"):
            return []
        result = find_result(actions.search_results(outcome), str(active_cell["row_id"]))
        if result is None:
            return []
        document, problem = actions.patent_document(client, str(active_cell["row_id"]))
        return detail_panel(result, document, problem)

    @app.callback(
        Output(ids.BAR_CHART, "figure"),
        Output(ids.CHART_STORE, "data"),
        Output(ids.CHART_MESSAGE, "children"),
        Input(ids.RESULTS_TABLE, "selected_row_ids"),
        State(ids.SEARCH_STORE, "data"),
        prevent_initial_call=True,
    )
    def compare_checked(selected_ids, outcome):
        patents = actions.checked_patents(actions.search_results(outcome), selected_ids)
        stats, problems = stats_cache.get([category_of(p) for p in patents])
        message = [error_element(p, f"chart-problem-{i}") for i, p in enumerate(problems)]
        return bar_figure(patents, stats), {"patents": patents}, message

    @app.callback(
        Output(ids.VIOLIN_CHART, "figure"),
        Input(ids.CHART_STORE, "data"),
        Input(ids.BAR_CHART, "hoverData"),
        prevent_initial_call=True,
    )
    def show_distributions(chart_data, hover_data):
        patents = (chart_data or {}).get("patents") or []
        stats, _problems = stats_cache.get([category_of(p) for p in patents])
        return violin_figure(patents, stats, hovered_patent(hover_data))

    @app.callback(
        Output(ids.EXPORT_DOWNLOAD, "data"),
        Input(ids.EXPORT_BUTTON, "n_clicks"),
        State(ids.SEARCH_STORE, "data"),
        prevent_initial_call=True,
    )
    def export(_clicks, outcome):
        results = actions.search_results(outcome)
        if not results:
            return no_update
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return dcc.send_bytes(export_csv(results), f"patentmatch-results-{stamp}.csv",
                              type="text/csv")
