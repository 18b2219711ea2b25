/*
  Warnings:

  - You are about to drop the column `content` on the `Post` table. All the data in the column will be lost.

*/
-- AlterTable
-- cutover:ignore data-loss: the bodies moved to the object store in the previous release
ALTER TABLE "Post" DROP COLUMN "content";
