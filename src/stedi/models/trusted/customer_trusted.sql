-- One row per customer: the latest record by lastUpdateDate (ties: the later ingest, file and line),
-- kept only when that record carries research consent. A later record without consent therefore
-- revokes it, and a later record with consent grants it.
WITH ranked AS (
    SELECT
        *,
        lower(trim(email)) AS customer_email,
        row_number() OVER (
            PARTITION BY lower(trim(email))
            ORDER BY lastUpdateDate DESC NULLS LAST, _ingested_at DESC, _source_file DESC, _source_line DESC
        ) AS recency
    FROM customer_landing
)
SELECT
    customer_email AS email,
    customerName,
    phone,
    birthDay,
    serialNumber,
    registrationDate,
    lastUpdateDate,
    shareWithResearchAsOfDate,
    shareWithPublicAsOfDate,
    shareWithFriendsAsOfDate,
    _source_file,
    _source_line
FROM ranked
WHERE recency = 1 AND shareWithResearchAsOfDate IS NOT NULL
