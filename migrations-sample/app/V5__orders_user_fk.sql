-- NOT VALID takes a brief lock; the scan happens in V6 without blocking writes.
ALTER TABLE orders ADD CONSTRAINT orders_user_id_fk
    FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
