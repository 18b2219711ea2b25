ALTER TABLE "widgets" RENAME TO "gadgets";
