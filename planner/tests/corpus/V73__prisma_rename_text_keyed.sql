-- AlterTable (edited by hand)
ALTER TABLE "ApiToken" RENAME COLUMN "label" TO "description";
