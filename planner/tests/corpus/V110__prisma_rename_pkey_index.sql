-- RenameIndex
ALTER INDEX "User_pkey" RENAME TO "User_id_pkey";
