--
-- PostgreSQL database dump
--

\restrict vectorassetsschema

-- Dumped from database version 18.4
-- Dumped by pg_dump version 18.4

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: vector; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;


--
-- Name: EXTENSION vector; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION vector IS 'vector data type and ivfflat and hnsw access methods';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: data_support; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.data_support (
    id bigint NOT NULL,
    text character varying NOT NULL,
    metadata_ json,
    node_id character varying,
    embedding public.vector(32),
    text_search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, (text)::text)) STORED
);


--
-- Name: data_support_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.data_support_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: data_support_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.data_support_id_seq OWNED BY public.data_support.id;


--
-- Name: data_support id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.data_support ALTER COLUMN id SET DEFAULT nextval('public.data_support_id_seq'::regclass);


--
-- Name: data_support data_support_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.data_support
    ADD CONSTRAINT data_support_pkey PRIMARY KEY (id);


--
-- Name: data_support_embedding_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX data_support_embedding_idx ON public.data_support USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64');


--
-- Name: support_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX support_idx ON public.data_support USING gin (text_search_tsv);


--
-- Name: support_idx_1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX support_idx_1 ON public.data_support USING btree (((metadata_ ->> 'ref_doc_id'::text)));


--
-- PostgreSQL database dump complete
--

\unrestrict vectorassetsschema

