-- Indexes the data-quality gate needs (expectations/, yibao.quality), so that a night's checks
-- read the night's rows and probe history through an index instead of scanning all of raw.
--
-- raw_usage_quality.usage_visit_has_claim: every usage line of the night is looked up in all
-- claims ever loaded (a claim may arrive nights after the usage lines of its visit). Without this
-- index the anti-join read the whole of raw.claim twice a night (GX runs each check's query for
-- its row count and again for its rows), so the check grew with history; with it, an ordinary
-- night probes the index once per usage line (a catch-up of many nights still hash-joins).
create index if not exists claim_visit_idx on raw.claim (hospital_code, visit_id);
