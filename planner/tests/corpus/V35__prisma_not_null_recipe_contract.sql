-- Custom migration (prisma migrate dev --create-only): require an author on every post, in the
-- order that skips the long scan under an exclusive lock.
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_not_null" CHECK ("authorId" IS NOT NULL) NOT VALID;

ALTER TABLE "Post" VALIDATE CONSTRAINT "Post_authorId_not_null";

-- AlterTable
ALTER TABLE "Post" ALTER COLUMN "authorId" SET NOT NULL;
