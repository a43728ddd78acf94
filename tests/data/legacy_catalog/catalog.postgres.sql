--
-- PostgreSQL database dump
--

\restrict XikQXC69tBZ5kT9on163KshTxnnLCbG5iraH0lM53czhwAn3BdeuabNuuQIxJfQ

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: SCHEMA "public"; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA "public" IS 'standard public schema';


SET default_tablespace = '';

SET default_table_access_method = "heap";

--
-- Name: diag_drift_checks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."diag_drift_checks" (
    "id" bigint NOT NULL,
    "capture_key" "text" NOT NULL,
    "cell_ref" "text" NOT NULL,
    "drifted" boolean NOT NULL,
    "checked_at" timestamp with time zone NOT NULL
);


--
-- Name: diag_drift_checks_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."diag_drift_checks" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."diag_drift_checks_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: diag_schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."diag_schema_migrations" (
    "version" integer NOT NULL,
    "applied_at" timestamp with time zone NOT NULL,
    "description" "text" NOT NULL
);


--
-- Name: diagnostic_capture; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."diagnostic_capture" (
    "key" "text" NOT NULL,
    "request_key" "text" NOT NULL,
    "cell_ref" "text" NOT NULL,
    "status" "text" NOT NULL,
    "mode" "text" NOT NULL,
    "source_version" "text" NOT NULL,
    "artifact_uri" "text",
    "x_hash" "text",
    "y_hash" "text",
    "trial_log_hash" "text",
    "content_hash" "text",
    "bytes" bigint,
    "created_at" timestamp with time zone NOT NULL,
    "updated_at" timestamp with time zone NOT NULL,
    "last_used_at" timestamp with time zone,
    "use_count" bigint DEFAULT 0 NOT NULL,
    "producing_run_id" "text",
    "status_reason" "text",
    CONSTRAINT "diagnostic_capture_status_check" CHECK (("status" = ANY (ARRAY['capturing'::"text", 'complete'::"text", 'failed'::"text", 'stale'::"text"])))
);


--
-- Data for Name: diag_drift_checks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."diag_drift_checks" OVERRIDING SYSTEM VALUE VALUES (1, 'ck-00000000000000000000000000000001', 'defi_top5/UNIUSDC/fold-3', false, '2026-03-14 09:43:28.733435+00');
INSERT INTO "public"."diag_drift_checks" OVERRIDING SYSTEM VALUE VALUES (2, 'ck-00000000000000000000000000000005', 'defi_top5/OPUSDC/fold-1', true, '2026-03-14 09:43:35.856892+00');
INSERT INTO "public"."diag_drift_checks" OVERRIDING SYSTEM VALUE VALUES (3, 'ck-00000000000000000000000000000006', 'defi_top5/ARBUSDC/fold-0', true, '2026-03-14 09:43:42.980349+00');
INSERT INTO "public"."diag_drift_checks" OVERRIDING SYSTEM VALUE VALUES (4, 'ck-0000000000000000000000000000000a', 'defi_top5/UNIUSDC/fold-3', false, '2026-03-14 09:43:50.103806+00');
INSERT INTO "public"."diag_drift_checks" OVERRIDING SYSTEM VALUE VALUES (5, 'ck-00000000000000000000000000000001', 'defi_top5/UNIUSDC/fold-3', false, '2026-03-14 09:44:11.474177+00');


--
-- Data for Name: diag_schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."diag_schema_migrations" VALUES (1, '2026-03-14 09:39:33.659354+00', 'diagnostic_capture: one row per capture key');
INSERT INTO "public"."diag_schema_migrations" VALUES (2, '2026-03-14 09:39:40.782811+00', 'diag_drift_checks: one row per drift check of a capture');


--
-- Data for Name: diagnostic_capture; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000007', 'rq-00000000000000000000000000000007', 'defi_top5/UNIUSDC/fold-3', 'stale', 'full_replay', 'sv-7', NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-14 09:42:31.745779+00', '2026-03-14 09:42:38.869236+00', NULL, 0, 'run-7', 'abandoned by GC');
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000008', 'rq-8', 'defi_top5/UNIUSDC/fold-3', 'capturing', 'full_replay', 'sv-8', NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-14 09:42:45.992693+00', '2026-03-14 09:42:45.992693+00', NULL, 0, NULL, NULL);
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000001', 'rq-shared', 'defi_top5/UNIUSDC/fold-3', 'complete', 'full_replay', 'sv-1', 's3://diag-bucket/diag-harness/captures/ck-00000000000000000000000000000001', '11111111111111111111111111111111', 'y1000000000000000000000000000000', 't1111111111111111111111111111111', 'c1222222222222222222222222222222', 1099511627776, '2026-03-14 09:39:47.906268+00', '2026-03-14 09:39:55.029725+00', '2026-03-14 09:40:16.400096+00', 3, 'run-1', NULL);
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000002', 'rq-shared', 'defi_top5/OPUSDC/fold-1', 'complete', 'dataset_only', 'sv-2', 's3://diag-bucket/diag-harness/captures/ck-00000000000000000000000000000002', '22222222222222222222222222222222', 'y2000000000000000000000000000000', NULL, 'c2222222222222222222222222222222', 0, '2026-03-14 09:40:23.523553+00', '2026-03-14 09:40:30.64701+00', NULL, 0, 'run-2b', NULL);
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000003', 'rq-00000000000000000000000000000003', 'defi_top5/ARBUSDC/fold-0', 'complete', 'single_fit', 'sv-3', 's3://diag-bucket/diag-harness/captures/ck-00000000000000000000000000000003', '33333333333333333333333333333333', 'y3000000000000000000000000000000', 't3111111111111111111111111111111', 'c3222222222222222222222222222222', 12345, '2026-03-14 09:40:37.770467+00', '2026-03-14 09:40:44.893924+00', '2026-03-14 09:40:52.017381+00', 1, 'run-3', NULL);
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000004', 'rq-00000000000000000000000000000004', 'defi_top5/UNIUSDC/fold-3', 'failed', 'full_replay', 'sv-4', NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-14 09:40:59.140838+00', '2026-03-14 09:41:06.264295+00', NULL, 0, '', 'trial loop crashed: MemoryError');
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000005', 'rq-00000000000000000000000000000005', 'defi_top5/OPUSDC/fold-1', 'failed', 'full_replay', 'sv-5', NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-14 09:41:13.387752+00', '2026-03-14 09:41:49.005037+00', '2026-03-14 09:41:27.634666+00', 1, 'run-5-retry', 'l''échec « quoted » "twice"; 100% -- not SQL');
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000006', 'rq-00000000000000000000000000000006', 'defi_top5/ARBUSDC/fold-0', 'stale', 'full_replay', 'sv-6', 's3://diag-bucket/diag-harness/captures/ck-00000000000000000000000000000006', '66666666666666666666666666666666', 'y6000000000000000000000000000000', 't6111111111111111111111111111111', 'c6222222222222222222222222222222', 12345, '2026-03-14 09:41:56.128494+00', '2026-03-14 09:42:24.622322+00', '2026-03-14 09:42:17.498865+00', 2, 'run-6', 'source changed');
INSERT INTO "public"."diagnostic_capture" VALUES ('ck-00000000000000000000000000000009', 'rq-00000000000000000000000000000009', 'defi_top5/OPUSDC/fold-1', 'capturing', 'full_replay', 'sv-9', NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-14 09:42:53.11615+00', '2026-03-14 09:43:21.609978+00', '2026-03-14 09:43:07.363064+00', 1, 'run-9-again', NULL);


--
-- Name: diag_drift_checks_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."diag_drift_checks_id_seq"', 5, true);


--
-- Name: diag_drift_checks diag_drift_checks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."diag_drift_checks"
    ADD CONSTRAINT "diag_drift_checks_pkey" PRIMARY KEY ("id");


--
-- Name: diag_schema_migrations diag_schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."diag_schema_migrations"
    ADD CONSTRAINT "diag_schema_migrations_pkey" PRIMARY KEY ("version");


--
-- Name: diagnostic_capture diagnostic_capture_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."diagnostic_capture"
    ADD CONSTRAINT "diagnostic_capture_pkey" PRIMARY KEY ("key");


--
-- Name: diag_drift_checks_checked_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "diag_drift_checks_checked_at_idx" ON "public"."diag_drift_checks" USING "btree" ("checked_at");


--
-- Name: diagnostic_capture_cell_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "diagnostic_capture_cell_idx" ON "public"."diagnostic_capture" USING "btree" ("cell_ref");


--
-- Name: diagnostic_capture_request_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "diagnostic_capture_request_idx" ON "public"."diagnostic_capture" USING "btree" ("request_key", "status", "created_at");


--
-- PostgreSQL database dump complete
--

\unrestrict XikQXC69tBZ5kT9on163KshTxnnLCbG5iraH0lM53czhwAn3BdeuabNuuQIxJfQ

