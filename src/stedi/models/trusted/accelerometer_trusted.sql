-- Phone readings of consenting customers within the consent scope, exact duplicates collapsed.
-- `user` matches a customer's email trimmed and case-insensitively; a reading that carries only a
-- serial number belongs to that number's one owner, or to nobody when the number is ambiguous.
WITH attributed AS (
    SELECT
        coalesce(lower(trim(reading.user)), owners.email) AS user,
        reading.timestamp,
        reading.x,
        reading.y,
        reading.z
    FROM accelerometer_landing AS reading
    LEFT JOIN serial_number_owners AS owners
        ON owners.serialNumber = reading.serialNumber
)
SELECT DISTINCT attributed.user, attributed.timestamp, attributed.x, attributed.y, attributed.z
FROM attributed
JOIN customer_trusted AS customer ON customer.email = attributed.user
CROSS JOIN run_settings
WHERE run_settings.consent_scope = 'all' OR attributed.timestamp >= customer.shareWithResearchAsOfDate
