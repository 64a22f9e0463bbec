"""The one reader of the environment.

Azure App Settings, ``local.settings.json`` (under the Functions host) and the local host all arrive as environment
variables, so nothing else in the product calls ``os.environ``. Every setting is documented in
``local.settings.sample.json``; a test keeps the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", populate_by_name=True)

    @field_validator("dataverse_budget", "marketo_budget", mode="before")
    @classmethod
    def _budget_mode(cls, value: object) -> object:
        """``shared`` or ``process`` for both budgets (any case); ``local``, the first spelling of
        ``DATAVERSE_BUDGET``'s per-process mode, is still read as ``process``."""
        if isinstance(value, str):
            value = value.strip().lower()
            return "process" if value == "local" else value
        return value

    # --- Which services the product talks to -------------------------------------------------------------
    target: Literal["simulated", "live"] = Field(
        default="simulated", validation_alias=AliasChoices("SYNC_TARGET", "target")
    )

    # --- Dataverse (Dynamics 365) ------------------------------------------------------------------------
    dataverse_url: str = Field(
        default="https://contoso.crm.dynamics.com", validation_alias=AliasChoices("DATAVERSE_URL", "dataverse_url")
    )
    dataverse_tenant_id: str = Field(default="", validation_alias=AliasChoices("DATAVERSE_TENANT_ID"))
    dataverse_client_id: str = Field(default="", validation_alias=AliasChoices("DATAVERSE_CLIENT_ID"))
    dataverse_client_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("DATAVERSE_CLIENT_SECRET")
    )
    dataverse_authority_host: str = Field(
        default="https://login.microsoftonline.com", validation_alias=AliasChoices("DATAVERSE_AUTHORITY_HOST")
    )
    dataverse_sync_user_id: str = Field(default="", validation_alias=AliasChoices("DATAVERSE_SYNC_USER_ID"))
    dataverse_organization: str = Field(default="", validation_alias=AliasChoices("DATAVERSE_ORGANIZATION"))
    dataverse_max_concurrency: int = Field(
        default=16, ge=1, le=52, validation_alias=AliasChoices("DATAVERSE_MAX_CONCURRENCY")
    )
    # The shared budget (docs/budgets.md): Dataverse's per-user service protection limits, drawn from the store.
    dataverse_budget: Literal["shared", "process"] = Field(
        default="shared", validation_alias=AliasChoices("DATAVERSE_BUDGET")
    )
    dataverse_requests_per_5min: int = Field(
        default=6000, ge=1, le=6000, validation_alias=AliasChoices("DATAVERSE_REQUESTS_PER_5MIN")
    )
    dataverse_concurrency: int = Field(default=52, ge=1, le=52, validation_alias=AliasChoices("DATAVERSE_CONCURRENCY"))
    dataverse_execution_seconds_per_5min: float = Field(
        default=1200.0, ge=0, le=1200, validation_alias=AliasChoices("DATAVERSE_EXECUTION_SECONDS_PER_5MIN")
    )
    dataverse_live_reserve_percent: float = Field(
        default=30.0, ge=0, lt=100, validation_alias=AliasChoices("DATAVERSE_LIVE_RESERVE_PERCENT")
    )

    # --- Marketo Engage ----------------------------------------------------------------------------------
    marketo_base_url: str = Field(
        default="https://123-ABC-456.mktorest.com", validation_alias=AliasChoices("MARKETO_BASE_URL")
    )
    marketo_identity_url: str = Field(default="", validation_alias=AliasChoices("MARKETO_IDENTITY_URL"))
    marketo_client_id: str = Field(default="", validation_alias=AliasChoices("MARKETO_CLIENT_ID"))
    marketo_client_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("MARKETO_CLIENT_SECRET")
    )
    marketo_calls_per_20s: int = Field(
        default=100, ge=1, le=100, validation_alias=AliasChoices("MARKETO_CALLS_PER_20S")
    )
    marketo_max_concurrency: int = Field(
        default=10, ge=1, le=10, validation_alias=AliasChoices("MARKETO_MAX_CONCURRENCY")
    )
    marketo_headroom: float = Field(default=0.1, ge=0.0, lt=1.0, validation_alias=AliasChoices("MARKETO_HEADROOM"))
    marketo_daily_quota: int = Field(default=50_000, ge=1, validation_alias=AliasChoices("MARKETO_DAILY_QUOTA"))
    # The shared budget (docs/budgets.md): every instance and timer draws Marketo's limits from the state store.
    marketo_budget: Literal["shared", "process"] = Field(
        default="shared", validation_alias=AliasChoices("MARKETO_BUDGET")
    )
    marketo_live_reserve_percent: float = Field(
        default=30.0, ge=0, lt=100, validation_alias=AliasChoices("MARKETO_LIVE_RESERVE_PERCENT")
    )
    marketo_daily_reserve_percent: float = Field(
        default=10.0, ge=0, le=100, validation_alias=AliasChoices("MARKETO_DAILY_RESERVE_PERCENT")
    )
    marketo_ui_url: str = Field(default="https://app.marketo.com", validation_alias=AliasChoices("MARKETO_UI_URL"))

    function_app_url: str = Field(
        default="", validation_alias=AliasChoices("FUNCTION_APP_URL", "AZURE_FUNCTION_APP_URL")
    )

    # --- Webhooks in --------------------------------------------------------------------------------------
    dataverse_webhook_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("DATAVERSE_WEBHOOK_SECRET")
    )
    dataverse_webhook_header: str = Field(
        default="x-sync-secret", validation_alias=AliasChoices("DATAVERSE_WEBHOOK_HEADER")
    )
    marketo_webhook_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("MARKETO_WEBHOOK_SECRET")
    )
    marketo_webhook_header: str = Field(
        default="x-sync-secret", validation_alias=AliasChoices("MARKETO_WEBHOOK_HEADER")
    )

    # --- Service Bus ----------------------------------------------------------------------------------------
    changes_queue: str = Field(default="sync-changes", validation_alias=AliasChoices("SYNC_CHANGES_QUEUE"))
    quick_sync_queue: str = Field(default="quick-sync", validation_alias=AliasChoices("QUICK_SYNC_QUEUE"))
    flow_steps_queue: str = Field(default="flow-steps", validation_alias=AliasChoices("FLOW_STEPS_QUEUE"))
    service_bus_namespace: str = Field(
        default="", validation_alias=AliasChoices("ServiceBusConnection__fullyQualifiedNamespace")
    )
    # A reconcile batch of at least this many messages (the host gathered them within host.json's 2 s
    # maxBatchWaitTime: a stream of 100 changes/s or more), fresh ones among them, sends only full Marketo calls
    # per call group; the records beyond the last full 300 go back on the queue for a later batch, at most
    # SYNC_CARRY_MAX_SECONDS. 0: never held (shared/pipeline/reconcile/carry.py).
    carry_busy_messages: int = Field(default=200, ge=0, validation_alias=AliasChoices("SYNC_CARRY_BUSY_MESSAGES"))
    carry_max_seconds: float = Field(default=120.0, gt=0, validation_alias=AliasChoices("SYNC_CARRY_MAX_SECONDS"))

    # --- Timers (NCRONTAB with seconds; the Functions host reads the same settings for the triggers) -------
    marketo_feed_schedule: str = Field(default="*/30 * * * * *", validation_alias=AliasChoices("MARKETO_FEED_SCHEDULE"))
    dataverse_catchup_schedule: str = Field(
        default="0 */1 * * * *", validation_alias=AliasChoices("DATAVERSE_CATCHUP_SCHEDULE")
    )
    quick_sync_schedule: str = Field(default="15 */1 * * * *", validation_alias=AliasChoices("QUICK_SYNC_SCHEDULE"))
    quick_sync_budget_seconds: float = Field(
        default=480.0, gt=0, validation_alias=AliasChoices("QUICK_SYNC_BUDGET_SECONDS")
    )
    quick_sync_page_size: int = Field(
        default=5000, ge=1, le=5000, validation_alias=AliasChoices("QUICK_SYNC_PAGE_SIZE")
    )
    quick_sync_bulk_min: int = Field(default=1000, ge=0, validation_alias=AliasChoices("QUICK_SYNC_BULK_MIN"))
    pause_recheck_seconds: float = Field(default=30.0, gt=0, validation_alias=AliasChoices("PAUSE_RECHECK_SECONDS"))

    # --- Durability: pending marks, the sweep and the circuits (docs/durability.md) -------------------------
    pending_sweep_schedule: str = Field(
        default="45 */1 * * * *", validation_alias=AliasChoices("PENDING_SWEEP_SCHEDULE")
    )
    pending_grace_seconds: float = Field(default=300.0, gt=0, validation_alias=AliasChoices("PENDING_GRACE_SECONDS"))
    pending_sweep_page_size: int = Field(
        default=5000, ge=1, le=50_000, validation_alias=AliasChoices("PENDING_SWEEP_PAGE_SIZE")
    )
    pending_max_attempts: int = Field(
        default=20, ge=1, le=10_000, validation_alias=AliasChoices("PENDING_MAX_ATTEMPTS")
    )
    circuit_probe_size: int = Field(default=5, ge=1, le=300, validation_alias=AliasChoices("CIRCUIT_PROBE_SIZE"))
    circuit_probe_base_seconds: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("CIRCUIT_PROBE_BASE_SECONDS")
    )
    circuit_probe_max_seconds: float = Field(
        default=900.0, gt=0, validation_alias=AliasChoices("CIRCUIT_PROBE_MAX_SECONDS")
    )
    marketo_feed_first_lookback_hours: float = Field(
        default=24.0, ge=0, le=24 * 30, validation_alias=AliasChoices("MARKETO_FEED_FIRST_LOOKBACK_HOURS")
    )
    # The verification sweep of one-way records (shared/pipeline/verify.py): a backfill on a small call budget.
    verify_sweep_schedule: str = Field(default="30 */5 * * * *", validation_alias=AliasChoices("VERIFY_SWEEP_SCHEDULE"))
    verify_sweep_max_calls: int = Field(
        default=3, ge=0, le=100, validation_alias=AliasChoices("VERIFY_SWEEP_MAX_CALLS")
    )
    max_instances: int = Field(default=1, ge=1, validation_alias=AliasChoices("FUNCTIONS_MAX_INSTANCES"))
    marketo_callers: int = Field(default=0, ge=0, validation_alias=AliasChoices("MARKETO_CALLERS"))
    """Deprecated for Marketo's budget, which is shared through the state store (MARKETO_BUDGET=shared): still
    sizes the fixed per-process share used while the store is unreachable (or with MARKETO_BUDGET=process), and
    Dataverse's per-process concurrency."""

    @property
    def api_callers(self) -> int:
        """How many processes may call Marketo and Dataverse at once: fixed per-process shares are divided by it."""
        return self.marketo_callers or self.max_instances

    azure_client_id: str = Field(default="", validation_alias=AliasChoices("AZURE_CLIENT_ID"))

    # --- State store ------------------------------------------------------------------------------------------
    state_store: Literal["table", "sqlite"] = Field(default="sqlite", validation_alias=AliasChoices("STATE_STORE"))
    state_table_endpoint: str = Field(default="", validation_alias=AliasChoices("STATE_TABLE_ENDPOINT"))
    state_table_connection_string: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("STATE_TABLE_CONNECTION_STRING")
    )
    state_sqlite_path: str = Field(default=".local/state.sqlite3", validation_alias=AliasChoices("STATE_SQLITE_PATH"))

    # --- Mapping -------------------------------------------------------------------------------------------------
    mapping_refresh_seconds: float = Field(
        default=30.0, ge=0, validation_alias=AliasChoices("SYNC_MAPPING_REFRESH_SECONDS")
    )
    mapping_file: str = Field(default="config/mapping.json", validation_alias=AliasChoices("SYNC_MAPPING_FILE"))

    # --- Admin actions ------------------------------------------------------------------------------------------
    person_claim_timeout_seconds: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("SYNC_PERSON_CLAIM_TIMEOUT_SECONDS")
    )

    # --- Record history (docs/record-history.md) ------------------------------------------------------------------
    history_retention_days: int = Field(
        default=14, ge=1, le=366, validation_alias=AliasChoices("HISTORY_RETENTION_DAYS")
    )
    history_max_entries: int = Field(default=50, ge=1, le=1000, validation_alias=AliasChoices("HISTORY_MAX_ENTRIES"))
    history_prune_schedule: str = Field(default="0 20 * * * *", validation_alias=AliasChoices("HISTORY_PRUNE_SCHEDULE"))

    # --- Telemetry and logs (docs/telemetry.md) -----------------------------------------------------------------
    applicationinsights_connection_string: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )
    applicationinsights_authentication_string: str = Field(
        default="", validation_alias=AliasChoices("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
    )
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=AliasChoices("LOG_FORMAT"))

    # --- The process (shared/memory.py) ------------------------------------------------------------------------
    malloc_mmap_threshold: int = Field(
        default=131072, ge=4096, le=32 * 1024 * 1024, validation_alias=AliasChoices("MALLOC_MMAP_THRESHOLD_")
    )

    # --- Local host (python -m local) ----------------------------------------------------------------------------
    local_functions_key: SecretStr = Field(default=SecretStr(""), validation_alias=AliasChoices("LOCAL_FUNCTIONS_KEY"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings are read once per process; tests build ``Settings(...)`` directly instead."""
    return Settings()
