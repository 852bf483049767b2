//! Every integration test in one binary: the real simulator over loopback, the real binary in
//! pseudo-terminals, the desk on PostgreSQL. One binary links once, and the fixtures are shared.

mod cli_support;
mod desk_support;
mod sim_support;
mod store_fixture;
mod tui_support;

mod check_endings;
mod cli_headless;
mod cli_v3;
mod client_sim;
mod connect_sdk_urls;
mod desk_agents;
mod desk_dashboards;
mod desk_diagnosis;
mod desk_durability;
mod desk_migrations;
mod desk_prober;
mod desk_secrets;
mod desk_sim_webhooks;
mod desk_webhooks;
mod error_parsing;
mod fetch_chaos;
mod fetch_retry_after;
mod fetch_scheduler;
mod fetch_v3;
mod fetch_vin_lookup;
mod health_diagnose;
mod health_ground_truth;
mod hostile_server;
mod pty_dashboard;
mod sim_api;
mod sim_limits;
mod sim_situations;
mod sim_v3;
mod source_outage;
mod store_apply;
mod store_filter;
mod store_snapshot;
mod tui_colours;
mod tui_keys;
mod tui_pty;
mod tui_terminal;
mod tui_views;
mod untrusted_output;
mod v3_client_sim;
