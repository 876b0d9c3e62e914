// Run once by the MongoDB image on its first start (docker-entrypoint-initdb.d): the app's
// account, read and write on its database only (mongodb.addr names it).
db.getSiblingDB("go_example").createUser({
  user: "go_example",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "readWrite", db: "go_example" }],
});
