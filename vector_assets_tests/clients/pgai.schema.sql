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
-- Name: public; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA public;


--
-- Name: SCHEMA public; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA public IS 'standard public schema';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: blog; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.blog (
    id integer NOT NULL,
    title text NOT NULL,
    category text NOT NULL,
    contents text NOT NULL
);


--
-- Name: blog_embedding_store; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.blog_embedding_store (
    embedding_uuid uuid DEFAULT gen_random_uuid() NOT NULL,
    id integer NOT NULL,
    chunk_seq integer NOT NULL,
    chunk text NOT NULL,
    embedding public.vector(32) NOT NULL
);
ALTER TABLE ONLY public.blog_embedding_store ALTER COLUMN embedding SET STORAGE MAIN;


--
-- Name: blog_embedding; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.blog_embedding AS
 SELECT t.embedding_uuid,
    t.chunk_seq,
    t.chunk,
    t.embedding,
    t.id,
    s.title,
    s.category,
    s.contents
   FROM (public.blog_embedding_store t
     LEFT JOIN public.blog s ON ((t.id = s.id)));


--
-- Name: blog_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.blog_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: blog_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.blog_id_seq OWNED BY public.blog.id;


--
-- Name: blog id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.blog ALTER COLUMN id SET DEFAULT nextval('public.blog_id_seq'::regclass);


--
-- Name: blog_embedding_store blog_embedding_store_id_chunk_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.blog_embedding_store
    ADD CONSTRAINT blog_embedding_store_id_chunk_seq_key UNIQUE (id, chunk_seq);


--
-- Name: blog_embedding_store blog_embedding_store_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.blog_embedding_store
    ADD CONSTRAINT blog_embedding_store_pkey PRIMARY KEY (embedding_uuid);


--
-- Name: blog blog_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.blog
    ADD CONSTRAINT blog_pkey PRIMARY KEY (id);


--
-- Name: blog_embedding_store_embedding_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX blog_embedding_store_embedding_idx ON public.blog_embedding_store USING hnsw (embedding public.vector_cosine_ops);


--
-- Name: blog _vectorizer_src_trg_1; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _vectorizer_src_trg_1 AFTER INSERT OR DELETE OR UPDATE ON public.blog FOR EACH ROW EXECUTE FUNCTION ai._vectorizer_src_trg_1();


--
-- Name: blog _vectorizer_src_trg_1_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER _vectorizer_src_trg_1_truncate AFTER TRUNCATE ON public.blog FOR EACH STATEMENT EXECUTE FUNCTION ai._vectorizer_src_trg_1();


--
-- PostgreSQL database dump complete
--

\unrestrict vectorassetsschema

