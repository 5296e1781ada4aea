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
-- Name: product_docs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.product_docs (
    langchain_id uuid NOT NULL,
    content text NOT NULL,
    embedding public.vector(32) NOT NULL,
    content_tsv tsvector NOT NULL,
    category text NOT NULL,
    year integer,
    langchain_metadata json
);


--
-- Name: product_docs product_docs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.product_docs
    ADD CONSTRAINT product_docs_pkey PRIMARY KEY (langchain_id);


--
-- Name: langchain_tsv_index; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX langchain_tsv_index ON public.product_docs USING gin (content_tsv);


--
-- Name: product_docslangchainvectorindex; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX product_docslangchainvectorindex ON public.product_docs USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64');


--
-- PostgreSQL database dump complete
--

\unrestrict vectorassetsschema

