-- A user's verified mobile number: set when the user signs in by SMS code (POST /auth/login_sms),
-- unique, absent for users who never did.
ALTER TABLE users
  ADD COLUMN phone VARCHAR(20) NULL COMMENT '手机号 verified mobile number' AFTER username,
  ADD UNIQUE KEY uk_users_phone (phone);
