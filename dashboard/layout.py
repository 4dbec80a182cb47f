"""The search page's components. No behaviour here: ``callbacks`` wires it."""

from __future__ import annotations

from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from dashboard import ids
from dashboard.charts import FONT_FAMILY, empty_figure
from dashboard.results import MISSING_TEXT, Notice, detail_fields, safe_kipris_url
from dashboard.search_form import (
    DEFAULT_RESULTS,
    MAX_RESULTS,
    REGISTER_STATUSES,
    SIX_T_CATEGORIES,
)

PAGE_SIZE = 10

SIX_T_NAMES = {
    "IT": "IT 정보기술",
    "BT": "BT 생명공학",
    "NT": "NT 나노기술",
    "ST": "ST 우주항공",
    "ET": "ET 환경에너지",
    "CT": "CT 문화기술",
    "unclassified": "미분류",
}
MODE_NAMES = {
    "": "기본 (API 설정)",
    "two_stage": "2단계 (초록 → 제목)",
    "hybrid": "하이브리드 (BM25 + 벡터)",
    "bm25": "키워드 (BM25)",
    "dense": "벡터",
}


def _score_format(precision: int) -> Format:
    return Format(precision=precision, scheme=Scheme.fixed).nully(MISSING_TEXT)


TABLE_COLUMNS = [
    {"name": "출원번호", "id": "application_number"},
    {"name": "특허명", "id": "title"},
    {"name": "PQI 지수", "id": "pqi", "type": "numeric", "format": _score_format(2)},
    {"name": "권리성", "id": "rights", "type": "numeric", "format": _score_format(1)},
    {"name": "기술성", "id": "technology", "type": "numeric", "format": _score_format(1)},
    {"name": "상업성", "id": "commercial", "type": "numeric", "format": _score_format(1)},
    {"name": "유사도", "id": "similarity", "type": "numeric", "format": _score_format(3)},
    {"name": "순위 점수", "id": "score", "type": "numeric", "format": _score_format(3)},
    {"name": "6T", "id": "six_t"},
    {"name": "링크", "id": "kipris", "presentation": "markdown"},
]
SCORE_COLUMN_IDS = ("pqi", "rights", "technology", "commercial")


def _field(label: str, component, html_for: str) -> html.Div:
    return html.Div([html.Label(label, htmlFor=html_for), component], className="pm-field")


def search_card() -> html.Div:
    """Return the search form: demand title, description, filters and the button."""
    title = dcc.Input(
        id=ids.TITLE, type="text", placeholder="수요기술명 (예: 딥러닝을 활용한 영상 인식)",
        className="pm-title-input", n_submit=0, debounce=False, autoFocus=True,
    )
    description = dcc.Textarea(
        id=ids.DESCRIPTION, className="pm-description",
        placeholder="상세 설명 (선택): 필요한 기술, 적용 분야, 요구 성능",
    )
    six_t = dcc.Dropdown(
        id=ids.SIX_T, multi=True, className="pm-dropdown", placeholder="전체",
        options=[{"label": SIX_T_NAMES[c], "value": c} for c in SIX_T_CATEGORIES],
    )
    ipc = dcc.Input(id=ids.IPC_PREFIX, type="text", placeholder="예: G06, H04N 5/232",
                    className="pm-small-input", n_submit=0, style={"width": "150px"})
    year_from = dcc.Input(id=ids.YEAR_FROM, type="number", placeholder="시작 연도",
                          className="pm-small-input", step=1, n_submit=0)
    year_to = dcc.Input(id=ids.YEAR_TO, type="number", placeholder="끝 연도",
                        className="pm-small-input", step=1, n_submit=0)
    status = dcc.Dropdown(
        id=ids.REGISTER_STATUS, multi=True, className="pm-dropdown", placeholder="전체",
        options=[{"label": s, "value": s} for s in REGISTER_STATUSES],
    )
    k = dcc.Input(id=ids.K, type="number", value=DEFAULT_RESULTS, min=1, max=MAX_RESULTS,
                  step=1, className="pm-small-input", n_submit=0)
    mode = dcc.Dropdown(
        id=ids.MODE, value="", clearable=False, className="pm-dropdown",
        options=[{"label": name, "value": value} for value, name in MODE_NAMES.items()],
    )
    return html.Div(className="pm-card", children=[
        html.Div(className="pm-form-row", children=[
            _field("수요기술명", title, ids.TITLE),
            html.Button("검색", id=ids.SEARCH_BUTTON, n_clicks=0, className="pm-button"),
        ]),
        html.Div(className="pm-form-row", children=[
            html.Div(_field("상세 설명", description, ids.DESCRIPTION), style={"flex": "1"}),
        ]),
        html.Div(className="pm-form-row", children=[
            _field("6T 분류", six_t, ids.SIX_T),
            _field("IPC 분류 (앞부분)", ipc, ids.IPC_PREFIX),
            _field("출원연도부터", year_from, ids.YEAR_FROM),
            _field("출원연도까지", year_to, ids.YEAR_TO),
            _field("권리 상태", status, ids.REGISTER_STATUS),
            _field("결과 수", k, ids.K),
            _field("검색 방식", mode, ids.MODE),
        ]),
        html.Div(id=ids.FORM_ERROR, role="alert"),
    ])


def results_table() -> dash_table.DataTable:
    """Return the results table: 10 rows a page, sortable, a checkbox per row."""
    missing_style = [
        {"if": {"filter_query": f"{{{column}}} is nil", "column_id": column},
         "color": "#8a96a3", "fontStyle": "italic"}
        for column in SCORE_COLUMN_IDS
    ]
    return dash_table.DataTable(
        id=ids.RESULTS_TABLE,
        columns=TABLE_COLUMNS,
        data=[],
        row_selectable="multi",
        selected_rows=[],
        selected_row_ids=[],
        page_action="native",
        page_current=0,
        page_size=PAGE_SIZE,
        sort_action="native",
        sort_mode="single",
        markdown_options={"link_target": "_blank"},
        cell_selectable=True,
        style_table={"overflowX": "auto"},
        style_cell={
            "fontFamily": FONT_FAMILY, "fontSize": "14px", "textAlign": "left",
            "whiteSpace": "normal", "height": "auto", "padding": "6px 8px",
            "lineHeight": "1.45",
        },
        style_cell_conditional=[
            {"if": {"column_id": "title"}, "minWidth": "280px", "width": "38%"},
            {"if": {"column_id": "application_number"}, "width": "130px"},
            {"if": {"column_type": "numeric"}, "textAlign": "right", "width": "80px"},
            {"if": {"column_id": "score"}, "minWidth": "90px"},
        ],
        style_header={"fontWeight": "600", "backgroundColor": "#eef2f6",
                      "whiteSpace": "normal"},
        style_data_conditional=[
            *missing_style,
            {"if": {"state": "active"}, "backgroundColor": "#e3efff",
             "border": "1px solid #1f6feb"},
        ],
    )


def results_card() -> html.Div:
    """Return the results section: count, export, share link, table, detail panel."""
    return html.Div(id=ids.RESULTS_CARD, className="pm-card", children=[
        html.Div(className="pm-results-header", children=[
            html.Div(id=ids.RESULT_COUNT, children="수요기술명을 입력하고 검색하세요."),
            html.Div([
                html.A("검색 링크", id=ids.SHARE_LINK, href="", title="이 검색을 다시 여는 주소",
                       style={"marginRight": "12px", "display": "none"}),
                html.Button("CSV 내보내기", id=ids.EXPORT_BUTTON, n_clicks=0, disabled=True,
                            className="pm-button-secondary"),
                dcc.Download(id=ids.EXPORT_DOWNLOAD),
            ]),
        ]),
        results_table(),
        html.Div(id=ids.DETAIL_PANEL, className="pm-detail"),
        html.Div(id=ids.EXTENSIONS),
    ])


def charts_card() -> html.Div:
    """Return the comparison charts of the checked patents."""
    graph_config = {"displaylogo": False, "responsive": True}
    return html.Div(className="pm-card pm-charts", children=[
        html.H3("선택한 특허 평가 비교", style={"margin": "0"}),
        html.Div(id=ids.CHART_MESSAGE),
        dcc.Graph(id=ids.BAR_CHART, figure=empty_figure(
            "표에서 특허를 선택하면 평가 점수를 비교합니다."), config=graph_config),
        dcc.Graph(id=ids.VIOLIN_CHART, figure=empty_figure("선택한 특허가 없습니다."),
                  config=graph_config),
    ])


def notice_elements(notices: list[Notice]) -> list[html.Div]:
    """Return one coloured block per notice; its id lets tests and users find it."""
    return [
        html.Div(notice.text, id=f"notice-{notice.notice_id}", role="status",
                 className=f"pm-notice pm-notice-{notice.kind}")
        for notice in notices
    ]


def error_element(message: str, element_id: str = "search-error") -> html.Div:
    """Return an error block."""
    return html.Div(message, id=element_id, role="alert", className="pm-notice pm-notice-error")


def build_layout(api_url: str) -> html.Div:
    """Return the whole page."""
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.SEARCH_STORE),
        dcc.Store(id=ids.CHART_STORE),
        html.Header(className="pm-header", children=[
            html.H1("유사 특허 탐색"),
            html.P(f"수요기술과 비슷한 특허를 찾고 평가 점수를 비교합니다. 검색 API: {api_url}"),
        ]),
        html.Main(className="pm-main", children=[
            search_card(),
            dcc.Loading(
                id="search-loading", type="default", delay_show=150,
                children=html.Div([
                    html.Div(id=ids.SEARCH_STATUS),
                    html.Div(id=ids.NOTICES),
                ]),
            ),
            results_card(),
            charts_card(),
        ]),
    ])


def detail_panel(result: dict, document: dict | None, problem: str | None) -> list:
    """Return the detail panel of one result: title, fields, abstract, KIPRIS link."""
    fields = detail_fields(result, document)
    abstract = (document or {}).get("abstract") or result.get("abstract") or MISSING_TEXT
    url = safe_kipris_url(result.get("kipris_url"))
    children = [
        html.H3(result.get("title") or result.get("application_number"),
                id="detail-title", style={"margin": "4px 0"}),
    ]
    if result.get("title_en"):
        children.append(html.Div(result["title_en"], style={"color": "#4a5a6b"}))
    if problem:
        children.append(html.Div(problem, className="pm-notice pm-notice-info"))
    children.append(html.Dl([part for label, value in fields
                             for part in (html.Dt(label), html.Dd(value))]))
    children.append(html.H4("초록", style={"margin": "8px 0 4px"}))
    children.append(html.P(abstract, id="detail-abstract", className="pm-abstract"))
    if url:
        children.append(html.A("KIPRIS에서 보기", href=url, target="_blank",
                               rel="noopener noreferrer", id="detail-kipris-link"))
    return [html.Div(children, className="pm-card", style={"marginTop": "12px"})]
