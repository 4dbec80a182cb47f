"""Component ids of the search page, shared by the layout, the callbacks and add-ons.

Other modules that extend the page (for example the demand workflow) read the
checked patents from ``RESULTS_TABLE``'s ``selected_row_ids`` (application
numbers) and the last search from ``SEARCH_STORE`` (see ``dashboard.actions``).
"""

URL = "url"

TITLE = "search-title"
DESCRIPTION = "search-description"
SIX_T = "search-six-t"
IPC_PREFIX = "search-ipc-prefix"
YEAR_FROM = "search-year-from"
YEAR_TO = "search-year-to"
REGISTER_STATUS = "search-register-status"
K = "search-k"
MODE = "search-mode"
SEARCH_BUTTON = "search-button"
FORM_ERROR = "search-form-error"

SEARCH_STORE = "search-store"

SEARCH_STATUS = "search-status"
NOTICES = "result-notices"
RESULTS_CARD = "results-card"
RESULTS_TABLE = "results-table"
RESULT_COUNT = "result-count"
EXPORT_BUTTON = "export-button"
EXPORT_DOWNLOAD = "export-download"
SHARE_LINK = "share-link"

DETAIL_PANEL = "detail-panel"

CHART_MESSAGE = "chart-message"
BAR_CHART = "bar-chart"
VIOLIN_CHART = "violin-chart"
CHART_STORE = "chart-store"

# An empty container under the results where add-ons put their controls.
EXTENSIONS = "page-extensions"
