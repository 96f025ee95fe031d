-- Run once by the postgres image on an empty volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER in POSTGRES_DB (prefect): the second database, MLflow's tracking store.
CREATE DATABASE mlflow;
