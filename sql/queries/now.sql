-- name: Now :one
-- now: the database clock. Reports (status, inspect) are stamped with it,
-- not with the machine's clock, so their ages agree with the rows' times.
SELECT now()::timestamptz AS now;
