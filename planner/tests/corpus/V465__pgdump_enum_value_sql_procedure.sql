ALTER TYPE public.order_status ADD VALUE 'refunded' AFTER 'paid';

CREATE PROCEDURE public.refund_order(order_id bigint)
    LANGUAGE sql
    AS $_$UPDATE public.orders SET status = 'refunded'::public.order_status WHERE id = order_id$_$;
