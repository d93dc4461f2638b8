-- The training table: each phone reading paired with the Step Trainer reading of the SAME customer
-- at the same millisecond. Joining on time alone would pair strangers' devices. No direct
-- identifier leaves: customers appear only as a keyed hash of their email.
SELECT
    sha256(concat(run_settings.key_secret, '|', reading.user)) AS customer_key,
    reading.timestamp,
    reading.x,
    reading.y,
    reading.z,
    step.distanceFromObject
FROM accelerometer_trusted AS reading
JOIN step_trainer_trusted AS step
    ON step.email = reading.user AND step.sensorReadingTime = reading.timestamp
CROSS JOIN run_settings
