-- The training table: each phone reading paired with the Step Trainer reading of the SAME customer
-- at the same millisecond. Joining on time alone would pair strangers' devices. No direct
-- identifier leaves: customers appear only as a keyed hash of their email, computed once per
-- customer that has pairs rather than once per row.
WITH pairs AS (
    SELECT reading.user, reading.timestamp, reading.x, reading.y, reading.z, step.distanceFromObject
    FROM accelerometer_trusted AS reading
    JOIN step_trainer_trusted AS step
        ON step.email = reading.user AND step.sensorReadingTime = reading.timestamp
), keyed AS (
    SELECT user, sha256(concat(run_settings.key_secret, '|', user)) AS customer_key
    FROM (SELECT DISTINCT user FROM pairs)
    CROSS JOIN run_settings
)
SELECT keyed.customer_key, pairs.timestamp, pairs.x, pairs.y, pairs.z, pairs.distanceFromObject
FROM pairs
JOIN keyed ON keyed.user = pairs.user
