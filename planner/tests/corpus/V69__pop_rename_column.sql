ALTER TABLE "identities" RENAME COLUMN "traits" TO "attributes";
