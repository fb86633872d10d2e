-- Raw extracts: every delivered version of every row, typed, with lineage.
-- Generated from yibao/contract.py and checked against it by tests/test_contract.py.
-- patient_id_no is never stored: the loader replaces it with patient_key (HMAC-SHA256),
-- patient_sex and patient_birth_year.

create table if not exists raw.purchase (
    load_id          bigint      not null,  -- raw.load_ledger (no FK: a per-row trigger slows COPY)
    business_date    date        not null,
    source_file      text        not null,
    source_row       integer     not null,
    loaded_at        timestamptz not null default now(),
    purchase_line_id         text,
    hospital_code            text,
    order_date               date,
    delivery_date            date,
    consumable_code          text,
    udi_di                   text,
    product_name             text,
    spec                     text,
    manufacturer             text,
    supplier_uscc            text,
    quantity                 numeric(18,4),
    unit_price               numeric(18,4),
    amount                   numeric(18,2),
    via_platform             boolean,
    invoice_no               text,
    paid_date                date,
    paid_amount              numeric(18,2),
    extra            jsonb
);
create index if not exists purchase_load_brin on raw.purchase using brin (load_id);

create table if not exists raw.usage (
    load_id          bigint      not null,  -- raw.load_ledger (no FK: a per-row trigger slows COPY)
    business_date    date        not null,
    source_file      text        not null,
    source_row       integer     not null,
    loaded_at        timestamptz not null default now(),
    usage_id                 text,
    hospital_code            text,
    visit_id                 text,
    patient_key        text,
    patient_sex        text,
    patient_birth_year smallint,
    dept_code                text,
    doctor_code              text,
    surgery_id               text,
    consumable_code          text,
    udi_di                   text,
    batch_no                 text,
    quantity                 numeric(18,4),
    charge_unit_price        numeric(18,4),
    charge_amount            numeric(18,2),
    used_at                  timestamp,
    extra            jsonb
);
create index if not exists usage_load_brin on raw.usage using brin (load_id);

create table if not exists raw.claim (
    load_id          bigint      not null,  -- raw.load_ledger (no FK: a per-row trigger slows COPY)
    business_date    date        not null,
    source_file      text        not null,
    source_row       integer     not null,
    loaded_at        timestamptz not null default now(),
    settlement_id            text,
    hospital_code            text,
    visit_id                 text,
    patient_key        text,
    patient_sex        text,
    patient_birth_year smallint,
    insurance_type           text,
    medical_category         text,
    admission_date           date,
    discharge_date           date,
    settled_at               timestamp,
    principal_diagnosis      text,
    drg_code                 text,
    total_amount             numeric(18,2),
    fund_paid                numeric(18,2),
    other_fund_paid          numeric(18,2),
    account_paid             numeric(18,2),
    cash_paid                numeric(18,2),
    negotiated_drug_amount   numeric(18,2),
    reversal_of              text,
    extra            jsonb
);
create index if not exists claim_load_brin on raw.claim using brin (load_id);

-- Reference data: whole-file snapshots, one version per load; staging reads the latest load.
create table if not exists raw.ref_hospitals (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    hospital_code            text,
    hospital_name            text,
    level                    text,
    county_code              text,
    ownership                text,
    extra       jsonb
);
create index if not exists ref_hospitals_load_idx on raw.ref_hospitals (load_id);

create table if not exists raw.ref_consumable_catalog (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    consumable_code          text,
    generic_name             text,
    category_code            text,
    is_high_value            boolean,
    status                   text,
    extra       jsonb
);
create index if not exists ref_consumable_catalog_load_idx on raw.ref_consumable_catalog (load_id);

create table if not exists raw.ref_vbp_batches (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    batch_id                 text,
    batch_name               text,
    category_prefix          text,
    cycle_start              date,
    cycle_end                date,
    extra       jsonb
);
create index if not exists ref_vbp_batches_load_idx on raw.ref_vbp_batches (load_id);

create table if not exists raw.ref_vbp_products (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    batch_id                 text,
    product_group            text,
    consumable_code          text,
    manufacturer             text,
    selected_price           numeric(18,4),
    pre_vbp_price            numeric(18,4),
    extra       jsonb
);
create index if not exists ref_vbp_products_load_idx on raw.ref_vbp_products (load_id);

create table if not exists raw.ref_vbp_agreed_volumes (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    batch_id                 text,
    hospital_code            text,
    product_group            text,
    base_qty                 numeric(18,4),
    agreed_ratio             numeric(12,8),
    extra       jsonb
);
create index if not exists ref_vbp_agreed_volumes_load_idx on raw.ref_vbp_agreed_volumes (load_id);

create table if not exists raw.ref_fund_budgets (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    year                     integer,
    hospital_code            text,
    insurance_type           text,
    annual_budget            numeric(18,2),
    m01_weight               numeric(12,8),
    m02_weight               numeric(12,8),
    m03_weight               numeric(12,8),
    m04_weight               numeric(12,8),
    m05_weight               numeric(12,8),
    m06_weight               numeric(12,8),
    m07_weight               numeric(12,8),
    m08_weight               numeric(12,8),
    m09_weight               numeric(12,8),
    m10_weight               numeric(12,8),
    m11_weight               numeric(12,8),
    m12_weight               numeric(12,8),
    extra       jsonb
);
create index if not exists ref_fund_budgets_load_idx on raw.ref_fund_budgets (load_id);

create table if not exists raw.ref_settlement_params (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    year                     integer,
    surplus_retention_rate   numeric(12,8),
    overspend_share_rate     numeric(12,8),
    extra       jsonb
);
create index if not exists ref_settlement_params_load_idx on raw.ref_settlement_params (load_id);

create table if not exists raw.ref_workday_overrides (
    load_id     bigint      not null references raw.load_ledger (load_id),
    source_row  integer     not null,
    loaded_at   timestamptz not null default now(),
    date                     date,
    is_workday               boolean,
    extra       jsonb
);
create index if not exists ref_workday_overrides_load_idx on raw.ref_workday_overrides (load_id);
