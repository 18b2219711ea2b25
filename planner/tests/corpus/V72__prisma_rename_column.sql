-- AlterTable (edited by hand: Prisma would drop and re-create the column)
ALTER TABLE "User" RENAME COLUMN "name" TO "displayName";
