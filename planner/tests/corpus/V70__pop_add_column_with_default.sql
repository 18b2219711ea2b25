ALTER TABLE "widgets" ADD COLUMN "weight_grams" integer NOT NULL DEFAULT '0';
